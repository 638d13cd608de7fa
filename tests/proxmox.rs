//! The Proxmox client against the in-process fake API (`tests/common/fake_proxmox.rs`):
//! parsing, the shared cache, every failure the issue lists, failover, TLS trust, and guest
//! actions followed to their task's end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_proxmox::{
    FakeCluster, FakeGuest, FakeProxmox, FakeTls, TOKEN_SECRET, config_for, dead_url, fast_timings,
};
use jarvis::config::ProxmoxConfig;
use jarvis::proxmox::{
    GuestAction, GuestKind, GuestRef, GuestState, NodeState, Proxmox, ProxmoxError, TaskResult,
    Timings,
};
use tokio::time::timeout;

/// Upper bound for any single call in these tests.
const LIMIT: Duration = Duration::from_secs(20);

fn client(config: &ProxmoxConfig, timings: Timings) -> Proxmox {
    Proxmox::with_timings(config, timings).unwrap()
}

async fn within<F: std::future::Future>(future: F) -> F::Output {
    timeout(LIMIT, future).await.expect("finishes in time")
}

fn guest(vmid: u32, kind: GuestKind, node: &str) -> GuestRef {
    GuestRef {
        vmid,
        kind,
        node: node.into(),
    }
}

#[tokio::test]
async fn the_inventory_is_read_from_the_documented_payload() {
    let fake = FakeProxmox::homelab().await;
    let proxmox = fake.client();
    let inventory = within(proxmox.inventory()).await.unwrap();

    let names: Vec<&str> = inventory.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["agent1", "pve"]);
    assert_eq!(inventory.node("pve").unwrap().status, NodeState::Online);
    assert_eq!(inventory.node("pve").unwrap().maxcpu, Some(16));

    let vmids: Vec<u32> = inventory.guests.iter().map(|g| g.vmid).collect();
    assert_eq!(vmids, [100, 101, 102, 103, 104, 9000]);
    let haos = inventory.guest(100).unwrap();
    assert_eq!(
        (haos.name.as_str(), haos.kind, haos.status),
        ("haos", GuestKind::Qemu, GuestState::Running)
    );
    assert_eq!(haos.tags, ["ha", "prod"]);
    assert!(haos.mem.is_some());
    let frigate = inventory.guest(103).unwrap();
    assert_eq!(
        (frigate.kind, frigate.status, frigate.node.as_str()),
        (GuestKind::Lxc, GuestState::Stopped, "agent1")
    );
    assert!(inventory.guest(9000).unwrap().template);

    assert_eq!(inventory.storages.len(), 6);
    let nas: Vec<_> = inventory
        .storages
        .iter()
        .filter(|s| s.storage == "nas")
        .collect();
    assert_eq!(nas.len(), 2);
    assert!(nas.iter().all(|s| s.shared && s.available));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].line(), "GET /cluster/resources");
    assert!(requests[0].authorized, "the token header was sent");
    let health = proxmox.health();
    assert!(health.reachable);
    assert_eq!(health.last_error, None);
    assert_eq!(health.node_url.as_deref(), Some(fake.url.as_str()));
    assert_eq!(health.last_success_secs_ago, Some(0));
}

#[tokio::test]
async fn the_inventory_is_cached_for_its_ttl_and_refresh_bypasses_it() {
    let fake = FakeProxmox::homelab().await;
    let timings = Timings {
        resources_ttl: Duration::from_millis(300),
        ..fast_timings()
    };
    let proxmox = client(&fake.config(), timings);
    assert!(proxmox.cached_inventory().is_none());
    let mut updates = proxmox.subscribe_inventory();

    let first = within(proxmox.inventory()).await.unwrap();
    let second = within(proxmox.inventory()).await.unwrap();
    assert!(Arc::ptr_eq(&first, &second), "served from the cache");
    assert_eq!(fake.count("GET /cluster/resources"), 1);
    let (cached, at) = proxmox.cached_inventory().unwrap();
    assert!(Arc::ptr_eq(&cached, &first));
    assert!(at.elapsed() < Duration::from_secs(5));
    assert!(updates.has_changed().unwrap());
    assert!(updates.borrow_and_update().is_some());

    // Refresh always asks, and subscribers see the new snapshot.
    fake.set_guest_status(103, "running");
    let refreshed = within(proxmox.refresh_inventory()).await.unwrap();
    assert_eq!(fake.count("GET /cluster/resources"), 2);
    assert_eq!(refreshed.guest(103).unwrap().status, GuestState::Running);
    assert!(updates.has_changed().unwrap());

    // Past the TTL, the next call fetches again.
    tokio::time::sleep(Duration::from_millis(350)).await;
    within(proxmox.inventory()).await.unwrap();
    assert_eq!(fake.count("GET /cluster/resources"), 3);
}

#[tokio::test]
async fn concurrent_callers_share_one_request() {
    let fake = FakeProxmox::homelab().await;
    fake.delay("/cluster/resources", Duration::from_millis(200));
    let proxmox = fake.client();
    let calls = (0..8).map(|_| {
        let proxmox = proxmox.clone();
        tokio::spawn(async move { proxmox.inventory().await })
    });
    let results = within(futures_util::future::join_all(calls)).await;
    let inventories: Vec<_> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
    assert!(inventories.iter().all(|i| Arc::ptr_eq(i, &inventories[0])));
    assert_eq!(fake.count("GET /cluster/resources"), 1);
}

#[tokio::test]
async fn node_status_cluster_status_and_updates_are_parsed_and_cached() {
    let fake = FakeProxmox::homelab().await;
    let proxmox = fake.client();

    let status = within(proxmox.node_status("pve")).await.unwrap();
    assert_eq!(status.loadavg, Some([0.42, 0.51, 0.47]));
    assert_eq!(
        status.pveversion.as_deref(),
        Some("pve-manager/9.1.2/0123abcd")
    );
    assert_eq!(status.memory_total, Some(67_108_864_000));
    within(proxmox.node_status("pve")).await.unwrap();
    within(proxmox.node_status("agent1")).await.unwrap();
    assert_eq!(fake.count("GET /nodes/pve/status"), 1);
    assert_eq!(fake.count("GET /nodes/agent1/status"), 1);

    let cluster = within(proxmox.cluster_status()).await.unwrap();
    assert_eq!(cluster.name.as_deref(), Some("homelab"));
    assert_eq!(cluster.quorate, Some(true));
    assert_eq!(cluster.members.len(), 2);
    within(proxmox.cluster_status()).await.unwrap();
    assert_eq!(fake.count("GET /cluster/status"), 1);

    assert_eq!(within(proxmox.pending_updates("pve")).await.unwrap(), 12);
    assert_eq!(within(proxmox.pending_updates("agent1")).await.unwrap(), 3);
    fake.set_updates("pve", 0);
    assert_eq!(
        within(proxmox.pending_updates("pve")).await.unwrap(),
        12,
        "cached for updates_ttl"
    );
    assert_eq!(fake.count("GET /nodes/pve/apt/update"), 1);
}

#[tokio::test]
async fn an_offline_node_and_a_bad_node_name_are_errors() {
    let fake = FakeProxmox::homelab().await;
    fake.set_node_online("agent1", false);
    let proxmox = fake.client();
    let inventory = within(proxmox.inventory()).await.unwrap();
    let agent1 = inventory.node("agent1").unwrap();
    assert_eq!(agent1.status, NodeState::Offline);
    assert_eq!(agent1.cpu, None, "no statistics for an offline node");

    match within(proxmox.node_status("agent1")).await {
        Err(ProxmoxError::Server { status: 595, .. }) => {}
        other => panic!("expected 595, got {other:?}"),
    }
    let before = fake.requests().len();
    match within(proxmox.node_status("../../access")).await {
        Err(ProxmoxError::Server { status: 400, .. }) => {}
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), before, "nothing was sent");
}

#[tokio::test]
async fn a_rejected_token_is_unauthorized_and_says_what_to_check() {
    let fake = FakeProxmox::homelab().await;
    fake.set_token_secret("regenerated-secret");
    let proxmox = fake.client();
    let err = within(proxmox.inventory()).await.unwrap_err();
    assert!(
        matches!(&err, ProxmoxError::Unauthorized { token_id } if token_id == "jarvis@pve!ha"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("the API token was rejected") && text.contains("proxmox.token_id"),
        "{text}"
    );
    assert!(!text.contains(TOKEN_SECRET));
    assert_eq!(err.spoken(), "Proxmox rejected my API token.");
    assert_eq!(fake.count("/cluster/resources"), 1, "401 is not retried");
    let health = proxmox.health();
    assert!(health.reachable, "the node answered");
    assert!(health.last_error.unwrap().contains("proxmox.token_id"));
}

#[tokio::test]
async fn a_missing_privilege_is_forbidden_with_proxmox_text_and_a_hint() {
    let fake = FakeProxmox::homelab().await;
    fake.forbid("/nodes/pve/status", "/nodes/pve", "Sys.Audit");
    fake.forbid("POST /nodes/pve/qemu/101", "/vms/101", "VM.PowerMgmt");
    let proxmox = fake.client();

    let err = within(proxmox.node_status("pve")).await.unwrap_err();
    let ProxmoxError::Forbidden { message, hint, .. } = &err else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert_eq!(message, "Permission check failed (/nodes/pve, Sys.Audit)");
    assert_eq!(hint, "Sys.Audit on /nodes/pve");
    assert!(err.to_string().contains("pveum acl modify"), "{err}");

    let err = within(proxmox.guest_action(&guest(101, GuestKind::Qemu, "pve"), GuestAction::Stop))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("VM.PowerMgmt on /vms/101"),
        "{err}"
    );
    assert_eq!(err.spoken(), "Proxmox says I'm not allowed to do that.");
}

#[tokio::test]
async fn a_server_error_carries_proxmox_message() {
    let fake = FakeProxmox::homelab().await;
    fake.fail("/cluster/status", 500, "cluster not ready - no quorum?");
    let proxmox = fake.client();
    let err = within(proxmox.cluster_status()).await.unwrap_err();
    assert_eq!(
        err,
        ProxmoxError::Server {
            status: 500,
            message: "cluster not ready - no quorum?".into(),
            path: "/cluster/status".into(),
        }
    );
    assert_eq!(
        err.spoken(),
        "Proxmox says: cluster not ready - no quorum?."
    );
}

#[tokio::test]
async fn a_slow_node_times_out() {
    let fake = FakeProxmox::homelab().await;
    fake.delay("/cluster/resources", Duration::from_secs(5));
    let timings = Timings {
        timeout: Duration::from_millis(300),
        ..fast_timings()
    };
    let config = ProxmoxConfig {
        read_retries: 2,
        ..fake.config()
    };
    let proxmox = client(&config, timings);
    let started = Instant::now();
    let err = within(proxmox.inventory()).await.unwrap_err();
    assert_eq!(
        fake.count("/cluster/resources"),
        1,
        "a timeout is not retried"
    );
    assert!(
        matches!(&err, ProxmoxError::Timeout { path, .. } if path == "/cluster/resources"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(err.to_string().contains("proxmox.timeout_secs"), "{err}");
    assert_eq!(err.spoken(), "Proxmox is taking too long to answer.");
    assert!(!proxmox.health().reachable);
}

#[tokio::test]
async fn failed_reads_are_retried_with_backoff() {
    let fake = FakeProxmox::homelab().await;
    let config = ProxmoxConfig {
        read_retries: 2,
        ..fake.config()
    };
    fake.fail_times("/cluster/resources", 500, "temporary failure", 2);
    let proxmox = client(&config, fast_timings());
    within(proxmox.inventory()).await.unwrap();
    assert_eq!(fake.count("/cluster/resources"), 3);

    // Connections that close before answering count as failures too.
    fake.clear_requests();
    fake.drop_next_connections(2);
    let fresh = client(&config, fast_timings());
    within(fresh.refresh_inventory()).await.unwrap();
    assert_eq!(fake.count("/cluster/resources"), 1);

    // Out of retries: the last error is reported.
    fake.clear_requests();
    fake.fail_times("/cluster/resources", 500, "still failing", 3);
    let err = within(proxmox.refresh_inventory()).await.unwrap_err();
    assert!(
        matches!(err, ProxmoxError::Server { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(fake.count("/cluster/resources"), 3);
}

#[tokio::test]
async fn an_action_is_sent_exactly_once() {
    let fake = FakeProxmox::homelab().await;
    let config = ProxmoxConfig {
        read_retries: 2,
        ..fake.config()
    };
    let proxmox = client(&config, fast_timings());
    fake.fail("POST /nodes", 500, "VM 101 is locked (backup)");
    let err =
        within(proxmox.guest_action(&guest(101, GuestKind::Qemu, "pve"), GuestAction::Reboot))
            .await
            .unwrap_err();
    assert_eq!(err.spoken(), "Proxmox says: VM 101 is locked (backup).");
    assert_eq!(fake.count("POST /nodes/pve/qemu/101/status/reboot"), 1);

    // A connection lost after the request may have left: not sent again.
    fake.heal();
    fake.clear_requests();
    fake.drop_next_connections(1);
    let fresh = client(&config, fast_timings());
    let connections = fake.connections();
    within(fresh.guest_action(&guest(101, GuestKind::Qemu, "pve"), GuestAction::Reboot))
        .await
        .unwrap_err();
    assert_eq!(fake.connections(), connections + 1, "one attempt only");
}

#[tokio::test]
async fn an_unreachable_first_node_fails_over_and_is_remembered() {
    let fake = FakeProxmox::homelab().await;
    let dead = dead_url();
    let proxmox = client(&config_for(&[&dead, &fake.url]), fast_timings());
    within(proxmox.inventory()).await.unwrap();
    assert_eq!(
        proxmox.health().node_url.as_deref(),
        Some(fake.url.as_str())
    );

    // Actions fail over too when the connection itself failed.
    let fresh = client(&config_for(&[&dead, &fake.url]), fast_timings());
    let upid = within(fresh.guest_action(&guest(102, GuestKind::Lxc, "pve"), GuestAction::Stop))
        .await
        .unwrap();
    assert!(upid.starts_with("UPID:pve:"), "{upid}");
    assert_eq!(fake.count("POST /nodes/pve/lxc/102/status/stop"), 1);

    // A node that accepts and hangs up: tried once, then the working one is used first.
    let flaky = FakeProxmox::homelab().await;
    flaky.drop_next_connections(1000);
    let proxmox = client(&config_for(&[&flaky.url, &fake.url]), fast_timings());
    fake.clear_requests();
    within(proxmox.refresh_inventory()).await.unwrap();
    within(proxmox.refresh_inventory()).await.unwrap();
    within(proxmox.node_status("pve")).await.unwrap();
    assert_eq!(flaky.connections(), 1, "the failed node is not tried again");
    assert_eq!(fake.count("GET /cluster/resources"), 2);
}

#[tokio::test]
async fn every_node_unreachable_lists_them_all() {
    let (first, second) = (dead_url(), dead_url());
    let proxmox = client(&config_for(&[&first, &second]), fast_timings());
    let err = within(proxmox.inventory()).await.unwrap_err();
    let ProxmoxError::Unreachable { tried, .. } = &err else {
        panic!("expected Unreachable, got {err:?}");
    };
    assert_eq!(tried, &[first.clone(), second.clone()]);
    let text = err.to_string();
    assert!(text.contains(&first) && text.contains(&second), "{text}");
    assert_eq!(err.spoken(), "I can't reach Proxmox right now.");
    let health = proxmox.health();
    assert!(!health.reachable);
    assert!(health.last_error.is_some());
    assert_eq!(health.last_success_secs_ago, None);
}

#[tokio::test]
async fn https_with_the_right_pin_works_and_a_wrong_pin_names_the_seen_one() {
    let fake = FakeProxmox::start_https(FakeCluster::homelab(), FakeTls::SelfSigned).await;
    let seen = fake.fingerprint().unwrap();

    // Any of several pins may match, in any case.
    let pinned = ProxmoxConfig {
        fingerprints: vec![["00"; 32].join(":"), seen.to_lowercase()],
        ..fake.config()
    };
    let inventory = within(client(&pinned, fast_timings()).inventory())
        .await
        .unwrap();
    assert_eq!(inventory.guests.len(), 6);
    fake.clear_requests();

    let wrong = ProxmoxConfig {
        fingerprints: vec![["AB"; 32].join(":")],
        ..fake.config()
    };
    let err = within(client(&wrong, fast_timings()).inventory())
        .await
        .unwrap_err();
    let ProxmoxError::Tls { seen: got, .. } = &err else {
        panic!("expected Tls, got {err:?}");
    };
    assert_eq!(got.as_deref(), Some(seen.as_str()));
    let text = err.to_string();
    assert!(
        text.contains(&seen) && text.contains("proxmox.fingerprints"),
        "{text}"
    );
    assert_eq!(err.spoken(), "I can't verify Proxmox's certificate.");
    assert_eq!(
        fake.count("/"),
        0,
        "no request was sent to an unverified node"
    );
}

#[tokio::test]
async fn a_ca_file_makes_a_ca_signed_node_trusted() {
    let fake = FakeProxmox::start_https(FakeCluster::homelab(), FakeTls::CaSigned).await;
    let dir = tempfile::tempdir().unwrap();
    let with_ca = ProxmoxConfig {
        ca_file: Some(fake.write_ca_file(dir.path())),
        ..fake.config()
    };
    within(client(&with_ca, fast_timings()).inventory())
        .await
        .unwrap();

    let err = within(client(&fake.config(), fast_timings()).inventory())
        .await
        .unwrap_err();
    let ProxmoxError::Tls { seen: None, .. } = &err else {
        panic!("expected an untrusted certificate, got {err:?}");
    };
    assert!(err.to_string().contains("proxmox.ca_file"), "{err}");

    let missing = ProxmoxConfig {
        ca_file: Some(dir.path().join("nope.pem")),
        ..fake.config()
    };
    let err = Proxmox::new(&missing).unwrap_err();
    assert!(matches!(err, ProxmoxError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("nope.pem"), "{err}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_insecure_opt_in_works_and_is_logged_loudly() {
    let fake = FakeProxmox::start_https(FakeCluster::homelab(), FakeTls::SelfSigned).await;
    let err = within(client(&fake.config(), fast_timings()).inventory())
        .await
        .unwrap_err();
    assert!(matches!(err, ProxmoxError::Tls { .. }), "{err:?}");

    let insecure = ProxmoxConfig {
        insecure_skip_verify: true,
        ..fake.config()
    };
    let (logs, _guard) = capture_logs();
    within(client(&insecure, fast_timings()).inventory())
        .await
        .unwrap();
    let logs = logs.text();
    assert!(
        logs.contains("WARN") && logs.contains("insecure_skip_verify"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_action_is_followed_to_its_task_end() {
    let fake = FakeProxmox::homelab().await;
    let proxmox = fake.client();
    let before = within(proxmox.inventory()).await.unwrap();
    assert_eq!(before.guest(101).unwrap().status, GuestState::Running);

    let upid =
        within(proxmox.guest_action(&guest(101, GuestKind::Qemu, "pve"), GuestAction::Shutdown))
            .await
            .unwrap();
    assert!(
        upid.starts_with("UPID:pve:") && upid.contains(":qmshutdown:101:"),
        "{upid}"
    );
    let outcome = within(proxmox.wait_task(&upid)).await;
    assert_eq!(outcome.result, TaskResult::Ok);
    assert_eq!(outcome.node, "pve");
    assert_eq!(outcome.upid, upid);
    assert!(fake.count("GET /nodes/pve/tasks/") >= 1);
    let polled = fake
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/nodes/pve/tasks/"))
        .unwrap();
    assert_eq!(polled.path, format!("/nodes/pve/tasks/{upid}/status"));

    // The task's end refreshes the inventory by itself (for the MQTT entities and the next
    // command): the new state arrives without anyone asking.
    let mut updates = proxmox.subscribe_inventory();
    within(updates.wait_for(|inventory| {
        inventory.as_ref().is_some_and(|i| {
            i.guest(101)
                .is_some_and(|g| g.status == GuestState::Stopped)
        })
    }))
    .await
    .unwrap();
    assert_eq!(fake.count("GET /cluster/resources"), 2);
    // The next command finds it fresh: no fetch of its own.
    let after = within(proxmox.inventory()).await.unwrap();
    assert_eq!(after.guest(101).unwrap().status, GuestState::Stopped);
    assert_eq!(fake.count("GET /cluster/resources"), 2);
}

#[tokio::test]
async fn a_failed_task_reports_proxmox_reason() {
    let fake = FakeProxmox::homelab().await;
    fake.set_guest_lock(103, Some("backup"));
    let proxmox = fake.client();
    let upid =
        within(proxmox.guest_action(&guest(103, GuestKind::Lxc, "agent1"), GuestAction::Start))
            .await
            .unwrap();
    let outcome = within(proxmox.wait_task(&upid)).await;
    assert_eq!(
        outcome.result,
        TaskResult::Failed {
            message: "VM is locked (backup)".into()
        }
    );
    assert_eq!(outcome.node, "agent1");
    assert_eq!(fake.guest_status(103).as_deref(), Some("stopped"));

    fake.fail_next_task("WARNINGS: 1");
    let upid =
        within(proxmox.guest_action(&guest(102, GuestKind::Lxc, "pve"), GuestAction::Reboot))
            .await
            .unwrap();
    let outcome = within(proxmox.wait_task(&upid)).await;
    assert_eq!(outcome.result, TaskResult::Warnings { count: 1 });
    assert!(outcome.result.succeeded());
}

#[tokio::test]
async fn task_poll_errors_are_retried_and_a_task_that_never_ends_times_out() {
    let fake = FakeProxmox::homelab().await;
    let proxmox = fake.client();
    fake.fail_times("/nodes/pve/tasks", 500, "temporary", 2);
    let upid = within(proxmox.guest_action(&guest(100, GuestKind::Qemu, "pve"), GuestAction::Stop))
        .await
        .unwrap();
    assert_eq!(
        within(proxmox.wait_task(&upid)).await.result,
        TaskResult::Ok
    );

    fake.tasks_never_end(true);
    let timings = Timings {
        task_timeout: Duration::from_millis(300),
        ..fast_timings()
    };
    let proxmox = client(&fake.config(), timings);
    let upid =
        within(proxmox.guest_action(&guest(104, GuestKind::Qemu, "agent1"), GuestAction::Start))
            .await
            .unwrap();
    let outcome = within(proxmox.wait_task(&upid)).await;
    assert_eq!(outcome.result, TaskResult::TimedOut);
    assert!(outcome.duration >= Duration::from_millis(300));
    assert!(outcome.duration < Duration::from_secs(5));
    assert!(fake.count("GET /nodes/agent1/tasks/") >= 2);

    let outcome = within(proxmox.wait_task("not-a-upid")).await;
    assert!(matches!(outcome.result, TaskResult::Failed { .. }));
}

#[tokio::test]
async fn an_action_on_a_guest_that_moved_fails_with_proxmox_reason() {
    let fake = FakeProxmox::homelab().await;
    let proxmox = fake.client();
    let stale = within(proxmox.inventory())
        .await
        .unwrap()
        .guest(104)
        .unwrap()
        .reference();
    fake.migrate_guest(104, "pve");
    let err = within(proxmox.guest_action(&stale, GuestAction::Start))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProxmoxError::Server { status: 500, message, .. } if message.contains("does not exist")),
        "{err:?}"
    );
    let fresh = within(proxmox.inventory()).await.unwrap();
    assert_eq!(fresh.guest(104).unwrap().node, "pve");

    fake.add_guest(FakeGuest::lxc(105, "unifi", "agent1").running());
    fake.remove_guest(100);
    let fresh = within(proxmox.refresh_inventory()).await.unwrap();
    assert!(fresh.guest(100).is_none());
    assert_eq!(fresh.guest(105).unwrap().name, "unifi");
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_secret_never_reaches_debug_errors_or_logs() {
    let (logs, _guard) = capture_logs();
    let fake = FakeProxmox::homelab().await;
    let config = fake.config();
    let proxmox = fake.client();
    assert!(!format!("{config:?}").contains(TOKEN_SECRET));
    assert!(!format!("{proxmox:?}").contains(TOKEN_SECRET));

    let mut errors = Vec::new();
    fake.fail("/cluster/status", 500, "boom");
    errors.push(within(proxmox.cluster_status()).await.unwrap_err());
    fake.forbid("/nodes/pve/status", "/nodes/pve", "Sys.Audit");
    errors.push(within(proxmox.node_status("pve")).await.unwrap_err());
    fake.set_token_secret("other");
    errors.push(within(proxmox.inventory()).await.unwrap_err());
    let dead = client(&config_for(&[&dead_url()]), fast_timings());
    errors.push(within(dead.inventory()).await.unwrap_err());
    let upid = "UPID:pve:1:2:3:qmstart:100:jarvis@pve!ha:";
    within(
        client(
            &fake.config(),
            Timings {
                task_timeout: Duration::from_millis(100),
                ..fast_timings()
            },
        )
        .wait_task(upid),
    )
    .await;
    let missing = ProxmoxConfig {
        token_secret: None,
        ..fake.config()
    };
    errors.push(Proxmox::new(&missing).unwrap_err());
    for err in &errors {
        assert!(!err.to_string().contains(TOKEN_SECRET), "{err}");
        assert!(!format!("{err:?}").contains(TOKEN_SECRET), "{err:?}");
    }
    assert!(
        errors
            .last()
            .unwrap()
            .to_string()
            .contains("JARVIS_PROXMOX_TOKEN_SECRET"),
        "a missing secret says where to put it"
    );
    assert!(!format!("{:?}", proxmox.health()).contains(TOKEN_SECRET));
    let logs = logs.text();
    assert!(logs.contains("proxmox"), "logs were captured: {logs}");
    assert!(!logs.contains(TOKEN_SECRET), "{logs}");
}

/// Log lines written while the guard lives (on this thread; use a current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}
