//! Per-route counts as the functions' answers report them, for `/status` and `datasync
//! status`: populate names the route of each message it accepted or filtered out, process and
//! retry say how many of each route's messages they delivered and how many failed (re-routed to
//! be retried, or dead-lettered). Kept per function pool; the status page adds the pools up.

use std::collections::BTreeMap;
use std::sync::Mutex;

use datasync_core::route_counts::RouteTally;
use serde::Deserialize;

use super::status::RouteCounts;

/// One item of populate's answer: `{"id",...,"route"}` or `{"filtered":true,"route"}`.
#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    filtered: bool,
}

/// populate's answer: one item, or an array of them for a batch.
#[derive(Deserialize)]
#[serde(untagged)]
enum Ingest {
    Many(Vec<Item>),
    One(Item),
}

/// The part of a process or retry answer this reads.
#[derive(Deserialize)]
struct Delivery {
    routes: Vec<RouteTally>,
}

/// Counts per route name.
#[derive(Debug, Default)]
pub struct RoutesSeen {
    counts: Mutex<BTreeMap<String, RouteCounts>>,
}

impl RoutesSeen {
    /// Adds what an answer's body reports (nothing when it names no route).
    pub fn record(&self, body: &[u8]) {
        if !body
            .windows(7)
            .any(|w| w == b"\"route\"" || w == b"\"routes")
        {
            return;
        }
        if let Ok(delivery) = serde_json::from_slice::<Delivery>(body) {
            let mut counts = self.lock();
            for t in delivery.routes {
                let c = entry(&mut counts, &t.route);
                c.delivered += t.delivered;
                c.failed += t.failed;
            }
            return;
        }
        let items = match serde_json::from_slice::<Ingest>(body) {
            Ok(Ingest::Many(items)) => items,
            Ok(Ingest::One(item)) => vec![item],
            Err(_) => return,
        };
        let mut counts = self.lock();
        for item in items {
            let Some(route) = item.route else { continue };
            let c = entry(&mut counts, &route);
            if item.filtered {
                c.filtered += 1;
            } else {
                c.accepted += 1;
            }
        }
    }

    /// The counts, by route name.
    pub fn list(&self) -> Vec<RouteCounts> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RouteCounts>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn entry<'m>(counts: &'m mut BTreeMap<String, RouteCounts>, route: &str) -> &'m mut RouteCounts {
    counts
        .entry(route.to_owned())
        .or_insert_with(|| RouteCounts {
            route: route.to_owned(),
            ..RouteCounts::default()
        })
}

/// The counts of several pools added up per route.
pub fn merge(lists: impl IntoIterator<Item = Vec<RouteCounts>>) -> Vec<RouteCounts> {
    let mut all: BTreeMap<String, RouteCounts> = BTreeMap::new();
    for list in lists {
        for c in list {
            let e = entry(&mut all, &c.route);
            e.accepted += c.accepted;
            e.filtered += c.filtered;
            e.delivered += c.delivered;
            e.failed += c.failed;
        }
    }
    all.into_values().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ingest_and_delivery_answers_are_counted_per_route() {
        let populate = RoutesSeen::default();
        populate.record(br#"{"id":"a","partition":"0","offset":1,"route":"orders"}"#);
        populate.record(br#"{"filtered":true,"route":"orders"}"#);
        populate.record(br#"[{"id":"b","partition":"0","offset":2,"route":"orders"},{"filtered":true,"route":"refunds"},{"id":"c","partition":"0","offset":3}]"#);
        // The sample's format names no route; a refusal or junk counts nothing.
        populate.record(br#"{"id":"d","partition":"0","offset":4}"#);
        populate.record(b"not json \"route\"");
        let process = RoutesSeen::default();
        process.record(br#"{"delivered":3,"rerouted":{},"deadLettered":1,"routes":[{"route":"orders","delivered":2,"failed":1}]}"#);
        process.record(br#"{"delivered":1,"rerouted":{},"deadLettered":0}"#);
        let all = merge([populate.list(), process.list()]);
        assert_eq!(all.len(), 2);
        let orders = &all[0];
        assert_eq!(
            (orders.route.as_str(), orders.accepted, orders.filtered),
            ("orders", 2, 1)
        );
        assert_eq!((orders.delivered, orders.failed), (2, 1));
        assert_eq!((all[1].route.as_str(), all[1].filtered), ("refunds", 1));
    }
}
