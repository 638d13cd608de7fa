//! Zeroconf (mDNS) advertisement of `_wyoming._tcp` (voice, for HA's Wyoming integration) and
//! `_jarvis._tcp` (the HTTP API, for the Jarvis integration from HACS), so Home Assistant
//! discovers Jarvis by itself. Both records carry the same instance name, which `/health` also
//! reports as `instance`: the integration keys its entry on it.
//!
//! Avahi publishes the host's own addresses, never `0.0.0.0`. When Jarvis listens on one address,
//! the record is limited to that address's interface; when it listens on loopback only, nothing is
//! advertised (HA could not connect anyway). Without a running avahi daemon Jarvis logs a warning
//! and serves on: discovery is a convenience, and HA can be pointed at host:port by hand.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};
use zeroconf::prelude::*;
use zeroconf::{MdnsService, NetworkInterface, ServiceRegistration, ServiceType, TxtRecord};

/// How often the advertising thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Registration normally completes in well under a second; after this long, say so.
const REGISTRATION_WARNING: Duration = Duration::from_secs(5);

/// The HTTP API's DNS-SD type (`_jarvis._tcp`); the HACS integration's manifest matches it.
pub const HTTP_SERVICE: &str = "jarvis";
/// The Wyoming server's DNS-SD type (`_wyoming._tcp`), which HA's Wyoming integration browses.
pub const WYOMING_SERVICE: &str = "wyoming";

/// One record to advertise: its DNS-SD type and TXT entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The type without underscores or protocol: [`WYOMING_SERVICE`] or [`HTTP_SERVICE`].
    pub kind: &'static str,
    /// TXT record entries.
    pub txt: Vec<(&'static str, String)>,
}

impl Service {
    /// `_wyoming._tcp`, no TXT entries (HA's Wyoming integration reads none).
    pub fn wyoming() -> Self {
        Self {
            kind: WYOMING_SERVICE,
            txt: Vec::new(),
        }
    }

    /// `_jarvis._tcp` for the HTTP API: `version` (Jarvis's), `path` (the API's base: `/health`
    /// and `/v1/...` lie under it) and `id` (the instance name, as `/health` reports it).
    pub fn http_api(instance: &str) -> Self {
        Self {
            kind: HTTP_SERVICE,
            txt: vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("path", "/".to_owned()),
                ("id", instance.to_owned()),
            ],
        }
    }

    /// `_<kind>._tcp`, for logs.
    fn label(&self) -> String {
        format!("_{}._tcp", self.kind)
    }
}

/// A running advertisement; dropping it withdraws the record.
#[derive(Debug)]
pub struct Advertisement {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why nothing is advertised.
#[derive(Debug, thiserror::Error)]
pub enum ZeroconfError {
    /// Listening on loopback: other hosts cannot connect.
    #[error(
        "listening on {0}, which other hosts cannot reach; listen on 0.0.0.0 or a LAN address (wyoming.addr, http.addr)"
    )]
    Loopback(IpAddr),
    /// No interface holds the address Jarvis listens on.
    #[error("no network interface has the address {0}")]
    NoInterface(IpAddr),
    /// The advertising thread could not start.
    #[error("cannot start the zeroconf thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// The default instance name: stable per host, as HA keys discovered entries on it.
pub fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        "jarvis".to_owned()
    } else {
        format!("jarvis-{host}")
    }
}

/// Which interface to advertise on for a listen address.
fn interface_for(ip: IpAddr) -> Result<NetworkInterface, ZeroconfError> {
    if ip.is_loopback() {
        return Err(ZeroconfError::Loopback(ip));
    }
    if ip.is_unspecified() {
        return Ok(NetworkInterface::Unspec);
    }
    let interfaces = if_addrs::get_if_addrs()?;
    interfaces
        .iter()
        .find(|iface| iface.ip() == ip)
        .and_then(|iface| iface.index)
        .map(NetworkInterface::AtIndex)
        .ok_or(ZeroconfError::NoInterface(ip))
}

/// Whether this host has an address HA can use (not loopback, not link-local).
fn has_routable_address() -> bool {
    if_addrs::get_if_addrs()
        .map(|ifaces| {
            ifaces.iter().any(|iface| match iface.ip() {
                IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
                IpAddr::V6(v6) => {
                    !v6.is_loopback() && !v6.is_unspecified() && !v6.is_unicast_link_local()
                }
            })
        })
        .unwrap_or(false)
}

/// Advertises the Wyoming server and, when it is served, the HTTP API, both as `instance`.
/// What cannot be advertised is logged and left out: discovery is a convenience.
pub fn advertise_jarvis(
    instance: &str,
    wyoming: SocketAddr,
    http: Option<SocketAddr>,
) -> Vec<Advertisement> {
    let mut services = vec![(Service::wyoming(), wyoming)];
    services.extend(http.map(|addr| (Service::http_api(instance), addr)));
    services
        .into_iter()
        .filter_map(|(service, addr)| match advertise(instance, &service, addr) {
            Ok(advertisement) => Some(advertisement),
            // An HTTP API on loopback is a deliberate set-up (a reverse proxy in front), not a
            // mistake worth a warning at every start.
            Err(ZeroconfError::Loopback(ip)) if service.kind == HTTP_SERVICE => {
                info!(%ip, service = %service.label(), "HTTP API on loopback only: not advertised");
                None
            }
            Err(err) => {
                warn!(cause = %err, service = %service.label(), "not advertising over zeroconf");
                None
            }
        })
        .collect()
}

/// Starts advertising `name` as `service` at `addr`.
///
/// Registration completes in the background; its failure (typically: no avahi daemon) is logged
/// as a warning and the server keeps running.
///
/// # Errors
/// When the address cannot be advertised at all (see [`ZeroconfError`]).
pub fn advertise(
    name: &str,
    service: &Service,
    addr: SocketAddr,
) -> Result<Advertisement, ZeroconfError> {
    let interface = interface_for(addr.ip())?;
    if !has_routable_address() {
        warn!("this host has no routable address; Home Assistant will ignore the zeroconf record");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::Builder::new().name("zeroconf".into()).spawn({
        let stop = Arc::clone(&stop);
        let name = name.to_owned();
        let service = service.clone();
        move || run(&name, &service, addr.port(), interface, &stop)
    })?;
    Ok(Advertisement {
        stop,
        thread: Some(thread),
    })
}

/// The advertising thread: avahi's event loop is blocking C, so it gets a thread of its own.
fn run(name: &str, record: &Service, port: u16, interface: NetworkInterface, stop: &AtomicBool) {
    let label = record.label();
    let service_type = match ServiceType::new(record.kind, "tcp") {
        Ok(service_type) => service_type,
        Err(err) => {
            warn!(cause = %err, service = %label, "zeroconf disabled: bad service type");
            return;
        }
    };
    let mut service = MdnsService::new(service_type, port);
    service.set_name(name);
    service.set_network_interface(interface);
    if !record.txt.is_empty() {
        let mut txt = TxtRecord::new();
        for (key, value) in &record.txt {
            if let Err(err) = txt.insert(key, value) {
                warn!(cause = %err, service = %label, key, "zeroconf TXT entry left out");
            }
        }
        service.set_txt_record(txt);
    }
    let registration = Arc::new(Registration {
        answered: AtomicBool::new(false),
        service: label.clone(),
    });
    service.set_context(Box::new(Arc::clone(&registration)));
    service.set_registered_callback(Box::new(on_registered));
    let event_loop = match service.register() {
        Ok(event_loop) => event_loop,
        Err(err) => {
            warn!(
                cause = %err,
                service = %label,
                "zeroconf advertisement failed (is avahi-daemon running?); Home Assistant will not \
                 discover Jarvis by itself: add it by host and port, or set wyoming.zeroconf.enabled = false"
            );
            return;
        }
    };
    let started = std::time::Instant::now();
    let mut warned = false;
    while !stop.load(Ordering::Relaxed) {
        if let Err(err) = event_loop.poll(POLL_INTERVAL) {
            warn!(cause = %err, service = %label, "zeroconf event loop failed; advertisement stopped");
            return;
        }
        // avahi may wait for a daemon that never comes instead of failing: say so once.
        if !warned
            && started.elapsed() > REGISTRATION_WARNING
            && !registration.answered.load(Ordering::Relaxed)
        {
            warned = true;
            warn!(
                waited = ?REGISTRATION_WARNING,
                service = %label,
                "zeroconf advertisement has had no answer from avahi (is avahi-daemon running?); \
                 Home Assistant may not discover Jarvis by itself: add it by host and port"
            );
        }
    }
}

/// What the registration callback shares with its thread.
#[derive(Debug)]
struct Registration {
    /// avahi answered, one way or the other.
    answered: AtomicBool,
    /// `_<kind>._tcp`, for the log line.
    service: String,
}

fn on_registered(
    result: zeroconf::Result<ServiceRegistration>,
    context: Option<Arc<dyn std::any::Any + Send + Sync>>,
) {
    let registration_context = context
        .as_ref()
        .and_then(|c| c.downcast_ref::<Arc<Registration>>());
    // The thread's "no answer" warning is not needed any more.
    if let Some(context) = registration_context {
        context.answered.store(true, Ordering::Relaxed);
    }
    let service = registration_context.map_or("", |c| c.service.as_str());
    match result {
        Ok(registration) => info!(
            name = registration.name(),
            service, "advertised over zeroconf"
        ),
        Err(err) => warn!(
            cause = %err,
            service,
            "zeroconf registration failed; add Jarvis to Home Assistant by host and port"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_never_advertised() {
        assert!(matches!(
            interface_for("127.0.0.1".parse().unwrap()),
            Err(ZeroconfError::Loopback(_))
        ));
        assert!(matches!(
            interface_for("::1".parse().unwrap()),
            Err(ZeroconfError::Loopback(_))
        ));
    }

    #[test]
    fn unspecified_means_every_interface_and_a_foreign_address_is_refused() {
        assert_eq!(
            interface_for("0.0.0.0".parse().unwrap()).unwrap(),
            NetworkInterface::Unspec
        );
        assert!(matches!(
            interface_for("192.0.2.77".parse().unwrap()),
            Err(ZeroconfError::NoInterface(_))
        ));
    }

    #[test]
    fn the_http_api_record_names_its_version_path_and_instance() {
        let service = Service::http_api("jarvis-vm300");
        assert_eq!(service.label(), "_jarvis._tcp");
        assert_eq!(
            service.txt,
            vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("path", "/".to_owned()),
                ("id", "jarvis-vm300".to_owned()),
            ]
        );
        assert_eq!(Service::wyoming().label(), "_wyoming._tcp");
        assert!(Service::wyoming().txt.is_empty());
    }

    #[test]
    fn the_default_name_is_stable() {
        assert_eq!(default_instance_name(), default_instance_name());
        assert!(default_instance_name().starts_with("jarvis"));
    }
}
