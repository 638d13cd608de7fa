//! Backends found over zeroconf: `zeroconf = "<instance name>"` or `discover = true` in
//! `[[stt.backends]]`, `[[tts.backends]]` or `[[wake.backends]]` instead of `addr`.
//!
//! One thread browses `_wyoming._tcp` with avahi (the `zeroconf` crate, as [`crate::zeroconf`]
//! advertises) and keeps what it finds in a [`Found`] table; a task looks at the table every
//! [`RESOLVE_INTERVAL`] and gives each such backend the address of its server
//! ([`Backend::set_found_at`]). From there the backend is an ordinary `host:port` one: its health
//! checks and requests connect there. Discovery is a thin layer: [`pick`] chooses, the rest of
//! the routing does not know how the address came.
//!
//! Never itself: a record with this Jarvis's own instance name is never picked, and a request
//! that still comes back (another name on the same process, a chain of Jarvis instances) is
//! refused by the `jarvis_hops` loop check as for any backend.
//!
//! Without avahi (no daemon, no D-Bus) the browser logs a warning once and such backends stay
//! down with "not found over zeroconf yet"; the others work as before.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::stt::backends::{Backend, Backends};

/// How often backends are matched against what was found.
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(1);
/// How often the browsing thread checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Records kept at most (a LAN with more Wyoming servers than this is not a home).
const MAX_RECORDS: usize = 256;

/// A record's addresses, one per interface and protocol avahi resolved it on.
type Addresses = Vec<(IpAddr, u16)>;

/// `_wyoming._tcp` records seen on the LAN: instance name → addresses, as avahi resolved them.
#[derive(Debug, Default, Clone)]
pub struct Found {
    records: Arc<Mutex<BTreeMap<String, Addresses>>>,
}

impl Found {
    /// Notes an address of `name` (avahi reports one per interface and protocol).
    pub fn add(&self, name: &str, ip: IpAddr, port: u16) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if !records.contains_key(name) && records.len() >= MAX_RECORDS {
            return;
        }
        let addrs = records.entry(name.to_owned()).or_default();
        if !addrs.contains(&(ip, port)) {
            addrs.push((ip, port));
        }
    }

    /// Forgets `name` (its record was withdrawn).
    pub fn remove(&self, name: &str) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Every record, with its best address as `host:port`, sorted by name.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(name, addrs)| best_addr(addrs).map(|a| (name.clone(), a)))
            .collect()
    }
}

/// The address to connect to among a record's: IPv4 before IPv6, never link-local IPv6 (it
/// needs a scope id), as `host:port`.
fn best_addr(addrs: &[(IpAddr, u16)]) -> Option<String> {
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => !v4.is_unspecified(),
        IpAddr::V6(v6) => !v6.is_unspecified() && !v6.is_unicast_link_local(),
    };
    addrs
        .iter()
        .filter(|(ip, _)| usable(ip))
        .min_by_key(|(ip, _)| (ip.is_ipv6(), ip.is_loopback()))
        .map(|(ip, port)| std::net::SocketAddr::new(*ip, *port).to_string())
}

/// The server a backend should use among `found` (`(name, host:port)`, sorted by name):
/// the one named `wanted`, or with `wanted` `None` (`discover = true`) the first one; never the
/// one named `own` (this Jarvis).
pub fn pick(found: &[(String, String)], wanted: Option<&str>, own: &str) -> Option<String> {
    found
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case(own))
        .find(|(name, _)| wanted.is_none_or(|w| name.eq_ignore_ascii_case(w.trim())))
        .map(|(_, addr)| addr.clone())
}

/// Whether any backend of `sets` is to be found over zeroconf.
pub fn wanted<'a>(sets: impl IntoIterator<Item = &'a Backends>) -> bool {
    sets.into_iter()
        .any(|set| set.all().iter().any(Backend::is_discovered))
}

/// Browses `_wyoming._tcp` and keeps the backends of `sets` pointed at what it finds, until
/// `token` is cancelled. `own` is this Jarvis's instance name.
pub fn spawn(
    sets: Vec<Arc<Backends>>,
    own: String,
    token: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let found = Found::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let browsing = {
        let found = found.clone();
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("zeroconf-browse".into())
            .spawn(move || browse(&found, &stop))
    };
    if let Err(err) = &browsing {
        warn!(cause = %err, "cannot start browsing zeroconf; backends given by zeroconf stay down");
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RESOLVE_INTERVAL);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = tick.tick() => resolve(&sets, &found.snapshot(), &own),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(thread) = browsing {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    })
}

/// Points every zeroconf backend of `sets` at its server in `found`.
fn resolve(sets: &[Arc<Backends>], found: &[(String, String)], own: &str) {
    for backend in sets.iter().flat_map(|set| set.all()) {
        if backend.is_discovered() {
            backend.set_found_at(pick(found, backend.config.zeroconf.as_deref(), own));
        }
    }
}

/// The browsing thread: avahi's event loop is blocking C.
fn browse(found: &Found, stop: &std::sync::atomic::AtomicBool) {
    use zeroconf::prelude::*;
    use zeroconf::{BrowserEvent, MdnsBrowser, ServiceType};
    let service_type = match ServiceType::new(crate::zeroconf::WYOMING_SERVICE, "tcp") {
        Ok(service_type) => service_type,
        Err(err) => {
            warn!(cause = %err, "zeroconf browsing disabled: bad service type");
            return;
        }
    };
    let mut browser = MdnsBrowser::new(service_type);
    browser.set_context(Box::new(found.clone()));
    browser.set_service_callback(Box::new(|event, context| {
        let Some(found) = context.as_ref().and_then(|c| c.downcast_ref::<Found>()) else {
            return;
        };
        match event {
            Ok(BrowserEvent::Add(service)) => match service.address().parse::<IpAddr>() {
                Ok(ip) => {
                    debug!(name = service.name(), %ip, port = service.port(), "found a Wyoming server over zeroconf");
                    found.add(service.name(), ip, *service.port());
                }
                Err(_) => debug!(name = service.name(), address = service.address(), "zeroconf address not usable"),
            },
            Ok(BrowserEvent::Remove(removal)) => {
                info!(name = removal.name(), "a Wyoming server left zeroconf");
                found.remove(removal.name());
            }
            Err(err) => debug!(cause = %err, "zeroconf browse error"),
        }
    }));
    let event_loop = match browser.browse_services() {
        Ok(event_loop) => event_loop,
        Err(err) => {
            warn!(
                cause = %err,
                "cannot browse zeroconf (is avahi-daemon running?); backends given by zeroconf \
                 stay down: give them an addr instead"
            );
            return;
        }
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if let Err(err) = event_loop.poll(POLL_INTERVAL) {
            warn!(cause = %err, "zeroconf browsing stopped");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(records: &[(&str, &str)]) -> Vec<(String, String)> {
        records
            .iter()
            .map(|(n, a)| ((*n).to_owned(), (*a).to_owned()))
            .collect()
    }

    #[test]
    fn a_named_server_is_picked_by_name_and_never_this_jarvis() {
        let records = found(&[
            ("gpu-box", "192.168.1.20:10300"),
            ("jarvis-vm300", "192.168.1.30:10700"),
        ]);
        assert_eq!(
            pick(&records, Some("GPU-box"), "jarvis-vm300").as_deref(),
            Some("192.168.1.20:10300")
        );
        assert_eq!(pick(&records, Some("jarvis-vm300"), "jarvis-vm300"), None);
        assert_eq!(pick(&records, Some("absent"), "jarvis-vm300"), None);
    }

    #[test]
    fn discover_takes_the_first_other_server() {
        let records = found(&[
            ("a-jarvis", "10.0.0.1:10700"),
            ("b-piper", "10.0.0.2:10200"),
        ]);
        assert_eq!(
            pick(&records, None, "a-jarvis").as_deref(),
            Some("10.0.0.2:10200")
        );
        assert_eq!(pick(&found(&[("me", "10.0.0.1:1")]), None, "me"), None);
    }

    #[test]
    fn ipv4_is_preferred_and_link_local_ipv6_never_used() {
        let table = Found::default();
        table.add("x", "fe80::1".parse().unwrap(), 10300);
        assert!(table.snapshot().is_empty());
        table.add("x", "2001:db8::5".parse().unwrap(), 10300);
        assert_eq!(table.snapshot()[0].1, "[2001:db8::5]:10300");
        table.add("x", "192.168.1.5".parse().unwrap(), 10300);
        assert_eq!(table.snapshot()[0].1, "192.168.1.5:10300");
        table.remove("x");
        assert!(table.snapshot().is_empty());
    }

    #[test]
    fn a_zeroconf_backend_is_read_from_the_config_file() {
        let text =
            "[[wake.backends]]\nzeroconf = \"gpu-box\"\n\n[[stt.backends]]\ndiscover = true\n";
        let path = std::path::Path::new("jarvis.toml");
        let mut config = crate::config::Config::parse(text, path).unwrap();
        config.stt.enabled = false;
        config.wake.enabled = false;
        config.validate(path).unwrap();
        assert_eq!(config.wake.backends[0].zeroconf.as_deref(), Some("gpu-box"));
        assert_eq!(config.wake.backends[0].label(), "zeroconf:gpu-box");
        assert!(config.stt.backends[0].discover);
        let both = "[[wake.backends]]\nzeroconf = \"gpu-box\"\naddr = \"a:1\"\n";
        let mut config = crate::config::Config::parse(both, path).unwrap();
        config.wake.enabled = false;
        assert!(config.validate(path).is_err());
    }
}
