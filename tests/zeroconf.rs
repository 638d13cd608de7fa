//! Zeroconf advertisement of the real binary, browsed with python-zeroconf (what HA uses).
//!
//! Needs a running avahi-daemon on the system bus: `scripts/test.sh` starts one. The no-avahi
//! case points the avahi client at a bus that does not exist.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use common::*;

#[tokio::test]
async fn jarvis_is_advertised_with_a_routable_address_and_its_real_port() {
    let name = format!("jarvis-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, format!("[wyoming.zeroconf]\nname = \"{name}\"\n")).unwrap();
    let mut served = serve_binary_with_zeroconf(&file).await;
    let advertised = served.wait_for_log("zeroconf").await;
    assert_eq!(
        advertised["message"], "advertised over zeroconf",
        "is avahi-daemon running? scripts/test.sh starts it: {advertised}"
    );

    let record = run_python_peer("browse.py", &[&name, "10"]).await;
    assert_eq!(record["port"], served.wyoming.port(), "record: {record}");
    let addresses: Vec<IpAddr> = record["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        addresses.iter().all(|a| !a.is_unspecified()),
        "{addresses:?}"
    );
    assert!(
        addresses.iter().any(|a| match a {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_loopback() && !v6.is_unicast_link_local(),
        }),
        "no routable address in {addresses:?}"
    );
    served.child.kill().await.unwrap();
}

/// The binary with zeroconf on (`serve_binary` turns it off), listening on every interface.
async fn serve_binary_with_zeroconf(file: &std::path::Path) -> Served {
    serve_binary_args(
        &[
            "serve",
            "--log-format",
            "json",
            "--config",
            file.to_str().unwrap(),
        ],
        &[("JARVIS_WYOMING_ADDR", "0.0.0.0:0")],
    )
    .await
}

#[tokio::test]
async fn without_avahi_jarvis_warns_and_serves_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, "[wyoming.zeroconf]\nenabled = true\n").unwrap();
    let mut served = serve_binary_args(
        &[
            "serve",
            "--log-format",
            "json",
            "--config",
            file.to_str().unwrap(),
        ],
        &[
            ("JARVIS_WYOMING_ADDR", "0.0.0.0:0"),
            (
                "DBUS_SYSTEM_BUS_ADDRESS",
                "unix:path=/nonexistent/jarvis-test-bus",
            ),
        ],
    )
    .await;
    let warning = served.wait_for_log("zeroconf").await;
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        warning["message"].as_str().unwrap().contains("avahi"),
        "{warning}"
    );
    let mut client = client(served.wyoming).await;
    assert_still_served(&mut client).await;
    served.child.kill().await.unwrap();
}
