//! Disk and ZFS questions end to end: `POST /v1/command` on the running server, against the fake
//! Proxmox API's `/nodes/{node}/disks/list` and `/disks/zfs` (healthy, a failing disk, a worn
//! SSD, a degraded pool, a token without Sys.Audit, an offline node).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::fake_proxmox::FakeProxmox;
use jarvis::app::App;
use jarvis::config::Secret;
use serde_json::{Value, json};

const KEY: &str = "s3cret-key-for-tests";

async fn start(fake: &FakeProxmox) -> App {
    let mut config = common::test_config();
    config.proxmox = fake.config();
    config.http.api_key = Secret::new(KEY);
    common::spawn_app(config).await
}

async fn ask(app: &App, text: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/command", app.http_addr.unwrap()))
        .header("x-api-key", KEY)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn reply(body: &Value) -> &str {
    body["reply"].as_str().unwrap()
}

#[tokio::test]
async fn healthy_disks_and_pools_are_said_briefly() {
    let fake = FakeProxmox::homelab().await;
    let app = start(&fake).await;

    let body = ask(&app, "Are my disks healthy?").await;
    assert_eq!(body["intent"], "DiskHealth");
    assert_eq!(body["handled"], true);
    assert_eq!(reply(&body), "All 6 disks are healthy.");

    let body = ask(&app, "How are the disks on pve?").await;
    assert_eq!(body["intent"], "DiskHealth");
    assert_eq!(body["slots"]["target"], "pve");
    assert_eq!(reply(&body), "All 3 disks on pve are healthy.");

    let body = ask(&app, "Is the ZFS pool healthy?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(reply(&body), "All 2 ZFS pools are online.");

    let body = ask(&app, "How is rpool?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(reply(&body), "rpool is online on agent1 and pve.");

    let body = ask(&app, "What's the wear on pve's SSDs?").await;
    assert_eq!(body["intent"], "DiskWear");
    assert_eq!(
        reply(&body),
        "The 2 SSDs on pve are fine; the most worn, sda on pve, has 88 percent of its life left."
    );

    let body = ask(&app, "How is the tank pool?").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(
        reply(&body),
        "I don't know a pool called tank. Your ZFS pools are rpool."
    );

    // One read per node for all of that: the cache serves the rest.
    assert_eq!(fake.count("GET /nodes/pve/disks/list"), 1);
    assert_eq!(fake.count("GET /nodes/agent1/disks/zfs"), 1);
    app.shutdown.cancel();
}

#[tokio::test]
async fn failing_disks_worn_ssds_and_degraded_pools_are_named() {
    let fake = FakeProxmox::homelab().await;
    fake.set_disk_health("pve", "/dev/sdb", "FAILED");
    fake.edit_disk("agent1", "/dev/nvme0n1", |d| d.wearout = Some(6));
    fake.set_pool_health("agent1", "tank", "DEGRADED");
    let app = start(&fake).await;

    let body = ask(&app, "Are my disks healthy?").await;
    assert_eq!(
        reply(&body),
        "Found 3 problems: sdb on pve (WDC WD40EFRX-68N32N0) is failing its SMART check, \
         nvme0n1 on agent1 (Samsung SSD 980 PRO 1TB) has only 6 percent of its life left and \
         the ZFS pool tank on agent1 is degraded."
    );
    let body = ask(&app, "how are the drives on pve").await;
    assert_eq!(
        reply(&body),
        "Found a problem: sdb on pve (WDC WD40EFRX-68N32N0) is failing its SMART check."
    );
    let body = ask(&app, "how worn are the SSDs").await;
    assert_eq!(body["intent"], "DiskWear");
    assert_eq!(
        reply(&body),
        "1 SSD is nearly worn out: nvme0n1 on agent1 has 6 percent left. Plan to replace it."
    );
    let body = ask(&app, "are the zfs pools ok").await;
    assert_eq!(body["intent"], "ZfsHealth");
    assert_eq!(
        reply(&body),
        "The pool tank on agent1 is degraded. The other 2 are online."
    );
    let body = ask(&app, "how is the pool tank").await;
    assert_eq!(reply(&body), "The pool tank on agent1 is degraded.");
    app.shutdown.cancel();
}

#[tokio::test]
async fn a_token_without_sys_audit_and_an_offline_node_are_said() {
    let fake = FakeProxmox::homelab().await;
    fake.forbid("/nodes/agent1/disks", "/nodes/agent1", "Sys.Audit");
    let app = start(&fake).await;
    let body = ask(&app, "are my disks healthy").await;
    assert_eq!(
        reply(&body),
        "All 3 disks are healthy. I'm not allowed to read the disks on agent1: the API token \
         needs Sys.Audit on /nodes/agent1."
    );
    let body = ask(&app, "check the disks on agent1").await;
    assert_eq!(
        reply(&body),
        "I'm not allowed to read the disks on agent1: the API token needs Sys.Audit on \
         /nodes/agent1."
    );
    app.shutdown.cancel();

    let fake = FakeProxmox::homelab().await;
    fake.set_node_online("agent1", false);
    let app = start(&fake).await;
    let body = ask(&app, "is the zfs pool healthy").await;
    assert_eq!(
        reply(&body),
        "rpool on pve is online. agent1 is offline, so I couldn't check its disks."
    );
    let body = ask(&app, "how are agent1's disks").await;
    assert_eq!(
        reply(&body),
        "agent1 is offline, so I couldn't check its disks."
    );
    assert_eq!(
        fake.count("GET /nodes/agent1/disks"),
        0,
        "offline: not asked"
    );
    app.shutdown.cancel();
}
