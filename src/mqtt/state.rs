//! State payloads: one JSON object per device, computed from the inventory and what was seen
//! before (rates come from counter deltas, boot times are kept steady), serialized so that an
//! unchanged device gives the same bytes and is not published again.
//!
//! Numbers are rounded to what a dashboard shows (0.1 % for CPU and memory, whole bytes per
//! second for rates): more digits would only make every poll a change.

use serde::Serialize;

use std::sync::Arc;

use crate::proxmox::{Guest, GuestState, Node, NodeDisks, NodeState, NodeStatus, Storage};

use super::disks::DiskState;

/// A new boot time within this many seconds of the published one is the same boot: uptime
/// comes from pvestatd's cache and lags the clock by up to a poll or two.
const BOOT_TOLERANCE_SECS: i64 = 90;

/// What a guest's last counters were, to turn the next ones into rates.
#[derive(Debug, Clone, Default)]
pub struct GuestMemory {
    sample: Option<Sample>,
    rates: Rates,
    started: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    uptime: u64,
    counters: [u64; 4],
}

/// Bytes per second: network in, out, disk read, write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rates([Option<u64>; 4]);

#[derive(Serialize)]
struct GuestPayload<'a> {
    status: &'static str,
    cpu: Option<f64>,
    mem: Option<u64>,
    mem_pct: Option<f64>,
    started: Option<String>,
    disk: Option<u64>,
    net_in: Option<u64>,
    net_out: Option<u64>,
    disk_read: Option<u64>,
    disk_write: Option<u64>,
    node: &'a str,
}

#[derive(Serialize)]
struct NodePayload<'a> {
    status: &'static str,
    cpu: Option<f64>,
    mem: Option<u64>,
    mem_pct: Option<f64>,
    started: Option<String>,
    load1: Option<f64>,
    load5: Option<f64>,
    load15: Option<f64>,
    updates: Option<u32>,
    #[serde(flatten)]
    disks: DiskState<'a>,
}

#[derive(Serialize)]
struct StoragePayload {
    used: Option<u64>,
    free: Option<u64>,
    total: Option<u64>,
    used_pct: Option<f64>,
    active: bool,
}

impl GuestMemory {
    /// Writes the guest's state JSON into `out` (cleared first) and remembers its counters.
    ///
    /// Rates are the counter deltas divided by the uptime delta, both from Proxmox, so they do
    /// not depend on when Jarvis polled. Proxmox's cache refreshes every ~10 s: a poll that sees
    /// the same uptime saw the same sample and keeps the previous rates. Counters that went
    /// back (the guest restarted) give no rate until the next sample.
    pub fn write_state(&mut self, guest: &Guest, now: i64, out: &mut Vec<u8>) {
        let running = guest.status == GuestState::Running || guest.status == GuestState::Paused;
        let sample = match (
            guest.uptime,
            guest.netin,
            guest.netout,
            guest.diskread,
            guest.diskwrite,
        ) {
            (Some(uptime), Some(a), Some(b), Some(c), Some(d)) if running => Some(Sample {
                uptime,
                counters: [a, b, c, d],
            }),
            _ => None,
        };
        match (self.sample, sample) {
            (_, None) => {
                self.rates = if running {
                    Rates::default()
                } else {
                    Rates([Some(0); 4])
                };
            }
            (Some(old), Some(new)) if new.uptime == old.uptime => {}
            (Some(old), Some(new)) if new.uptime > old.uptime => {
                let dt = new.uptime - old.uptime;
                let mut rates = [None; 4];
                for (rate, (&now, &then)) in rates
                    .iter_mut()
                    .zip(new.counters.iter().zip(old.counters.iter()))
                {
                    *rate = now.checked_sub(then).map(|delta| (delta + dt / 2) / dt);
                }
                self.rates = Rates(rates);
            }
            // First sample, or uptime went back: a restart.
            (_, Some(_)) => self.rates = Rates::default(),
        }
        self.sample = sample;
        self.started = if running {
            steady_boot(self.started, guest.uptime, now)
        } else {
            None
        };
        let [net_in, net_out, disk_read, disk_write] = self.rates.0;
        let payload = GuestPayload {
            status: guest.status.as_str(),
            cpu: guest.cpu.map(percent),
            mem: guest.mem,
            mem_pct: ratio(guest.mem, guest.maxmem),
            started: self.started.map(iso8601),
            disk: guest.disk,
            net_in,
            net_out,
            disk_read,
            disk_write,
            node: &guest.node,
        };
        write(out, &payload);
    }
}

/// A node's steady boot time.
#[derive(Debug, Clone, Default)]
pub struct NodeMemory {
    started: Option<i64>,
    /// The node's disks and pools, when they could be read (see [`super::disks`]).
    pub disks: Option<Arc<NodeDisks>>,
}

impl NodeMemory {
    /// Writes the node's state JSON into `out`; `detail` adds load, `updates` the pending count.
    pub fn write_state(
        &mut self,
        node: &Node,
        detail: Option<&NodeStatus>,
        updates: Option<u32>,
        now: i64,
        out: &mut Vec<u8>,
    ) {
        let online = node.status == NodeState::Online;
        self.started = if online {
            steady_boot(self.started, node.uptime, now)
        } else {
            None
        };
        let load = detail.filter(|_| online).and_then(|d| d.loadavg);
        let payload = NodePayload {
            status: match node.status {
                NodeState::Online => "online",
                NodeState::Offline => "offline",
                NodeState::Unknown => "unknown",
            },
            cpu: node.cpu.map(percent),
            mem: node.mem,
            mem_pct: ratio(node.mem, node.maxmem),
            started: self.started.map(iso8601),
            load1: load.map(|l| round2(l[0])),
            load5: load.map(|l| round2(l[1])),
            load15: load.map(|l| round2(l[2])),
            updates,
            disks: DiskState::new(self.disks.as_deref().filter(|_| online)),
        };
        write(out, &payload);
    }
}

/// Writes a storage's state JSON into `out`.
pub fn write_storage_state(storage: &Storage, out: &mut Vec<u8>) {
    let free = match (storage.used, storage.total) {
        (Some(used), Some(total)) => Some(total.saturating_sub(used)),
        _ => None,
    };
    let payload = StoragePayload {
        used: storage.used,
        free,
        total: storage.total,
        used_pct: ratio(storage.used, storage.total),
        active: storage.available,
    };
    write(out, &payload);
}

fn write(out: &mut Vec<u8>, payload: &impl Serialize) {
    out.clear();
    // Plain structs of numbers and strings: serializing into a Vec cannot fail.
    let _ = serde_json::to_writer(out, payload);
}

/// The boot time from an uptime, kept at its previous value while it stays within the
/// tolerance, so a steady guest never changes its `started` state.
fn steady_boot(previous: Option<i64>, uptime: Option<u64>, now: i64) -> Option<i64> {
    let uptime = i64::try_from(uptime?).ok()?;
    let boot = now - uptime;
    match previous {
        Some(prev) if (boot - prev).abs() <= BOOT_TOLERANCE_SECS => Some(prev),
        _ => Some(boot),
    }
}

fn percent(fraction: f64) -> f64 {
    (fraction * 1000.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn ratio(part: Option<u64>, whole: Option<u64>) -> Option<f64> {
    match (part, whole) {
        #[expect(
            clippy::cast_precision_loss,
            reason = "a percentage to 0.1 needs no more than f64's 52 bits"
        )]
        (Some(part), Some(whole)) if whole > 0 => Some(percent(part as f64 / whole as f64)),
        _ => None,
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `2026-08-21T10:00:00+00:00`, what HA's `timestamp` sensors parse.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxmox::GuestKind;
    use serde_json::Value;

    fn vm() -> Guest {
        Guest {
            vmid: 101,
            kind: GuestKind::Qemu,
            node: "pve1".into(),
            name: "haos".into(),
            status: GuestState::Running,
            template: false,
            cpu: Some(0.0234),
            maxcpu: Some(4),
            mem: Some(1 << 30),
            maxmem: Some(4 << 30),
            disk: Some(0),
            maxdisk: None,
            netin: Some(10_000),
            netout: Some(5_000),
            diskread: Some(0),
            diskwrite: Some(0),
            uptime: Some(1000),
            tags: vec![],
            lock: None,
            pool: None,
        }
    }

    fn state(memory: &mut GuestMemory, guest: &Guest, now: i64) -> Value {
        let mut out = Vec::new();
        memory.write_state(guest, now, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn iso8601_matches_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00+00:00");
        assert_eq!(iso8601(1_787_313_600), "2026-08-21T12:00:00+00:00");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59+00:00");
    }

    #[test]
    fn rates_come_from_counter_deltas_over_proxmox_uptime() {
        let mut memory = GuestMemory::default();
        let mut g = vm();
        let first = state(&mut memory, &g, 10_000);
        assert_eq!(first["net_in"], Value::Null, "no rate from one sample");
        assert_eq!(first["cpu"], 2.3);
        assert_eq!(first["mem_pct"], 25.0);
        assert_eq!(first["started"], iso8601(9_000));
        assert_eq!(first["node"], "pve1");

        g.uptime = Some(1010);
        g.netin = Some(20_000);
        g.netout = Some(5_000);
        g.diskwrite = Some(4096);
        let second = state(&mut memory, &g, 10_017);
        assert_eq!(second["net_in"], 1000);
        assert_eq!(second["net_out"], 0);
        assert_eq!(second["disk_write"], 410);
        assert_eq!(second["started"], first["started"], "steady boot time");

        // Same cached sample again: same rates, not zero.
        let third = state(&mut memory, &g, 10_032);
        assert_eq!(third, second);

        // A restart: uptime and counters go back.
        g.uptime = Some(5);
        g.netin = Some(100);
        let restarted = state(&mut memory, &g, 10_047);
        assert_eq!(restarted["net_in"], Value::Null);
        assert_eq!(restarted["started"], iso8601(10_042));

        g.status = GuestState::Stopped;
        g.uptime = Some(0);
        let stopped = state(&mut memory, &g, 10_062);
        assert_eq!(stopped["net_in"], 0);
        assert_eq!(stopped["started"], Value::Null);
        assert_eq!(stopped["status"], "stopped");
    }

    #[test]
    fn an_unchanged_guest_gives_the_same_bytes() {
        let mut memory = GuestMemory::default();
        let mut g = vm();
        let mut a = Vec::new();
        let mut b = Vec::new();
        memory.write_state(&g, 10_000, &mut a);
        g.uptime = Some(1015);
        memory.write_state(&g, 10_015, &mut b);
        memory.write_state(&g, 10_030, &mut a);
        assert_eq!(a, b);
    }

    #[test]
    fn node_and_storage_states() {
        let node = Node {
            name: "pve1".into(),
            status: NodeState::Online,
            cpu: Some(0.0412),
            maxcpu: Some(16),
            mem: Some(25),
            maxmem: Some(100),
            disk: None,
            maxdisk: None,
            uptime: Some(3600),
        };
        let detail = NodeStatus {
            loadavg: Some([0.421, 0.5, 0.47]),
            ..NodeStatus::default()
        };
        let mut out = Vec::new();
        NodeMemory::default().write_state(&node, Some(&detail), Some(3), 7200, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["status"], "online");
        assert_eq!(v["cpu"], 4.1);
        assert_eq!(v["mem_pct"], 25.0);
        assert_eq!(v["load1"], 0.42);
        assert_eq!(v["updates"], 3);
        assert_eq!(v["started"], iso8601(3600));

        let storage = Storage {
            storage: "local".into(),
            node: "pve1".into(),
            plugintype: None,
            available: true,
            shared: false,
            content: vec![],
            used: Some(30),
            total: Some(120),
        };
        write_storage_state(&storage, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["free"], 90);
        assert_eq!(v["used_pct"], 25.0);
        assert_eq!(v["active"], true);
    }
}
