//! What the relay shows: its clients, their replica ids, positions and byte counts.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use link::relay::Counters;
use serde_json::{json, Value as Json};

/// The relay's state, shared by its sessions and its HTTP server.
pub struct RelayState {
    pub upstream: String,
    pub listen: String,
    started: u64,
    /// The first replica id of the range, and which are taken.
    first_id: u32,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    clients: BTreeMap<u64, Client>,
    slots: Vec<bool>,
    /// Byte counts of sessions that ended.
    ended: Totals,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    upstream_read: u64,
    link_sent: u64,
    link_received: u64,
}

/// One connected drainer session (a MySQL connection carried over one link).
pub struct Client {
    /// The name of its certificate.
    pub name: String,
    pub address: String,
    pub since: u64,
    pub counters: Arc<Counters>,
    /// Its binlog stream's replica id upstream, once it asked for the binlog.
    pub replica_id: Option<u32>,
    /// Where its binlog stream stands: file and position, the last GTID, and the upstream
    /// commit time of the last event (for the lag).
    pub file: String,
    pub position: u64,
    pub gtid: String,
    pub event_time: u32,
}

impl RelayState {
    pub fn new(upstream: String, listen: String, first_id: u32, max_streams: u32) -> Self {
        RelayState {
            upstream,
            listen,
            started: now(),
            first_id,
            inner: Mutex::new(Inner {
                slots: vec![false; max_streams as usize],
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session; its id.
    pub fn join(&self, name: String, address: String, counters: Arc<Counters>) -> u64 {
        let mut inner = self.lock();
        inner.next += 1;
        let id = inner.next;
        inner.clients.insert(
            id,
            Client {
                name,
                address,
                since: now(),
                counters,
                replica_id: None,
                file: String::new(),
                position: 0,
                gtid: String::new(),
                event_time: 0,
            },
        );
        id
    }

    /// Forgets a session, freeing its replica id.
    pub fn leave(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(client) = inner.clients.remove(&id) {
            if let Some(rid) = client.replica_id {
                let slot = (rid - self.first_id) as usize;
                if let Some(s) = inner.slots.get_mut(slot) {
                    *s = false;
                }
            }
            let c = &client.counters;
            inner.ended.upstream_read += c.plain_read.load(Ordering::Relaxed);
            inner.ended.link_sent += c.link_sent.load(Ordering::Relaxed);
            inner.ended.link_received += c.link_received.load(Ordering::Relaxed);
        }
    }

    /// The session's replica id: the one it has, else the lowest free one of the range
    /// (`None`: all taken).
    pub fn replica_id(&self, id: u64) -> Option<u32> {
        let mut inner = self.lock();
        if let Some(rid) = inner.clients.get(&id).and_then(|c| c.replica_id) {
            return Some(rid);
        }
        let slot = inner.slots.iter().position(|taken| !taken)?;
        inner.slots[slot] = true;
        let rid = self.first_id + slot as u32;
        if let Some(c) = inner.clients.get_mut(&id) {
            c.replica_id = Some(rid);
        }
        Some(rid)
    }

    /// Applies `f` to the session's entry.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut Client)) {
        if let Some(c) = self.lock().clients.get_mut(&id) {
            f(c);
        }
    }

    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    fn totals(inner: &Inner) -> Totals {
        let mut t = inner.ended;
        for c in inner.clients.values() {
            // What the upstream sent is what the link read from its plain side.
            t.upstream_read += c.counters.plain_read.load(Ordering::Relaxed);
            t.link_sent += c.counters.link_sent.load(Ordering::Relaxed);
            t.link_received += c.counters.link_received.load(Ordering::Relaxed);
        }
        t
    }

    /// `/status`.
    pub fn to_json(&self) -> Json {
        let inner = self.lock();
        let totals = Self::totals(&inner);
        let now = now();
        let clients: Vec<Json> = inner
            .clients
            .iter()
            .map(|(id, c)| {
                let read = c.counters.plain_read.load(Ordering::Relaxed);
                let sent = c.counters.link_sent.load(Ordering::Relaxed);
                json!({
                    "id": id,
                    "name": c.name,
                    "address": c.address,
                    "connected_since": c.since,
                    "replica_id": c.replica_id,
                    "binlog_file": (!c.file.is_empty()).then_some(&c.file),
                    "binlog_position": (c.position > 0).then_some(c.position),
                    "gtid": (!c.gtid.is_empty()).then_some(&c.gtid),
                    "lag_seconds": (c.event_time > 0).then(|| now.saturating_sub(u64::from(c.event_time))),
                    "bytes_read": read,
                    "bytes_sent": sent,
                    "compression_ratio": ratio(read, sent),
                })
            })
            .collect();
        json!({
            "role": "relay",
            "upstream": self.upstream,
            "listen": self.listen,
            "started": self.started,
            "clients": clients,
            "bytes_read": totals.upstream_read,
            "bytes_sent": totals.link_sent,
            "bytes_received": totals.link_received,
            "compression_ratio": ratio(totals.upstream_read, totals.link_sent),
        })
    }

    /// `/metrics`, Prometheus text.
    pub fn to_prometheus(&self) -> String {
        let inner = self.lock();
        let t = Self::totals(&inner);
        let now = now();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, f64)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in lines {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "drainer_relay_clients",
            "gauge",
            "Drainer sessions connected.",
            vec![(String::new(), inner.clients.len() as f64)],
        );
        metric(
            "drainer_relay_bytes_read_total",
            "counter",
            "Bytes read from the upstream.",
            vec![(String::new(), t.upstream_read as f64)],
        );
        metric(
            "drainer_relay_bytes_sent_total",
            "counter",
            "Bytes sent to drainers (compressed frames).",
            vec![(String::new(), t.link_sent as f64)],
        );
        metric(
            "drainer_relay_compression_ratio",
            "gauge",
            "Bytes read from the upstream per byte sent.",
            vec![(
                String::new(),
                ratio(t.upstream_read, t.link_sent).unwrap_or(0.0),
            )],
        );
        let per_client = |f: &dyn Fn(&Client) -> Option<f64>| -> Vec<(String, f64)> {
            inner
                .clients
                .iter()
                .filter_map(|(id, c)| {
                    let labels = format!("{{client=\"{}\",session=\"{id}\"}}", escape(&c.name));
                    f(c).map(|v| (labels, v))
                })
                .collect()
        };
        metric(
            "drainer_relay_client_bytes_sent_total",
            "counter",
            "Bytes sent to one drainer session.",
            per_client(&|c| Some(c.counters.link_sent.load(Ordering::Relaxed) as f64)),
        );
        metric(
            "drainer_relay_client_lag_seconds",
            "gauge",
            "Now minus the upstream commit time of the last event sent to a binlog stream.",
            per_client(&|c| {
                (c.event_time > 0).then(|| now.saturating_sub(u64::from(c.event_time)) as f64)
            }),
        );
        out
    }
}

fn ratio(read: u64, sent: u64) -> Option<f64> {
    (sent > 0).then(|| (read as f64 / sent as f64 * 100.0).round() / 100.0)
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_are_unique_and_freed() {
        let state = RelayState::new("up".into(), "l".into(), 4001, 2);
        let counters = Arc::new(Counters::default());
        let a = state.join("a".into(), "x".into(), counters.clone());
        let b = state.join("b".into(), "y".into(), counters.clone());
        let c = state.join("c".into(), "z".into(), counters.clone());
        assert_eq!(state.replica_id(a), Some(4001));
        assert_eq!(state.replica_id(a), Some(4001));
        assert_eq!(state.replica_id(b), Some(4002));
        assert_eq!(state.replica_id(c), None);
        state.leave(a);
        assert_eq!(state.replica_id(c), Some(4001));
        let json = state.to_json();
        assert_eq!(json["clients"].as_array().unwrap().len(), 2);
        assert!(state.to_prometheus().contains("drainer_relay_clients 2"));
    }
}
