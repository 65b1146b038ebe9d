//! Per-route counts in the functions' answers (issue 21): process and retry say, per route,
//! how many of the call's messages they delivered and how many failed (re-routed to be
//! retried, or dead-lettered), as `"routes":[{"route","delivered","failed"}]`; the local stack
//! adds them up for its status page. Messages in the sample's format name no route and are not
//! counted here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One route's messages in one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTally {
    /// The route's name.
    pub route: String,
    /// Messages the target accepted.
    pub delivered: u64,
    /// Messages that failed (re-routed to be retried, or dead-lettered).
    pub failed: u64,
}

/// Counts per route, collected while a call's messages are handled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTallies(BTreeMap<String, (u64, u64)>);

impl RouteTallies {
    /// Counts one message of `route`, delivered or not.
    pub fn add(&mut self, route: &str, delivered: bool) {
        let entry = match self.0.get_mut(route) {
            Some(e) => e,
            None => self.0.entry(route.to_owned()).or_default(),
        };
        if delivered {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    /// The counts by route name, for the answer (empty when no message named a route).
    pub fn to_vec(&self) -> Vec<RouteTally> {
        self.0
            .iter()
            .map(|(route, (delivered, failed))| RouteTally {
                route: route.clone(),
                delivered: *delivered,
                failed: *failed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tallies_count_per_route_and_keep_their_wire_names() {
        let mut t = RouteTallies::default();
        t.add("orders", true);
        t.add("orders", false);
        t.add("orders", true);
        t.add("refunds", false);
        let json = serde_json::to_value(t.to_vec()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"route": "orders", "delivered": 2, "failed": 1},
                {"route": "refunds", "delivered": 0, "failed": 1}
            ])
        );
        assert!(RouteTallies::default().to_vec().is_empty());
    }
}
