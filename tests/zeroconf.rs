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

#[tokio::test]
async fn the_http_api_is_advertised_as_jarvis_with_its_version_path_and_instance() {
    let name = format!("jarvis-http-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, format!("[wyoming.zeroconf]\nname = \"{name}\"\n")).unwrap();
    let served = serve_binary_args(
        &[
            "serve",
            "--log-format",
            "json",
            "--config",
            file.to_str().unwrap(),
        ],
        &[
            ("JARVIS_WYOMING_ADDR", "0.0.0.0:0"),
            ("JARVIS_HTTP_ADDR", "0.0.0.0:0"),
        ],
    )
    .await;
    let http = served.http.expect("the HTTP API is on");

    let record = run_python_peer("browse.py", &[&name, "10", "_jarvis._tcp.local."]).await;
    assert_eq!(
        record["port"],
        http.port(),
        "is avahi-daemon running? {record}"
    );
    assert_eq!(
        record["properties"],
        serde_json::json!({"version": env!("CARGO_PKG_VERSION"), "path": "/", "id": name}),
        "record: {record}"
    );
    // What Home Assistant does with the record: ask the advertised address for /health, whose
    // `instance` is the integration's unique id.
    let v4 = record["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str().unwrap().parse::<std::net::Ipv4Addr>().ok())
        .find(|a| !a.is_loopback() && !a.is_link_local())
        .unwrap_or_else(|| panic!("no routable IPv4 address in {record}"));
    let health: serde_json::Value = tokio::time::timeout(LIMIT, async {
        reqwest::get(format!("http://{v4}:{}/health", http.port()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(health["instance"], name, "{health}");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn an_http_api_on_loopback_is_not_advertised_and_wyoming_still_is() {
    let name = format!("jarvis-loopback-test-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jarvis.toml");
    std::fs::write(&file, format!("[wyoming.zeroconf]\nname = \"{name}\"\n")).unwrap();
    let mut served = serve_binary_with_zeroconf(&file).await;
    let skipped = served.wait_for_log("HTTP API on loopback").await;
    assert_eq!(skipped["level"], "INFO", "{skipped}");
    assert_eq!(skipped["service"], "_jarvis._tcp", "{skipped}");
    let record = run_python_peer("browse.py", &[&name, "10"]).await;
    assert_eq!(record["port"], served.wyoming.port(), "record: {record}");
    served.child.kill().await.unwrap();
}
