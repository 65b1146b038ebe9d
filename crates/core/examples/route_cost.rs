//! The cost of a route per message: the issue's filter and four-field transform (plus key),
//! as populate (filter, key) and delivery (resolve) run them on one message's data.
//!
//! `cargo run --release -p datasync-core --example route_cost`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use datasync_core::routes::{Input, RouteSet};

const ROUTES: &str = r#"
[[routes]]
name = "orders"
target = "https://api.example.com/orders"
filter = '.total > 0'
transform = '{id: .orderId, amount: .total, currency: .currency, customer: .customer.id}'
key = '.orderId | tostring'
"#;

fn main() {
    let set = RouteSet::from_toml(ROUTES).unwrap();
    let route = set.get("orders").unwrap();
    let data = r#"{"orderId":7,"total":12.5,"currency":"EUR","customer":{"id":"c-1","name":"A"},"junk":[1,2,3]}"#;
    let n = 100_000u32;
    let started = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..n {
        let input = Input::from_json(data).unwrap();
        assert!(route.filter_input(&input).unwrap());
        let key = route.key_input(&input).unwrap();
        let call = route.resolve_input(&input).unwrap();
        bytes += key.map_or(0, |k| k.len()) + call.payload.map_or(0, |p| p.len());
    }
    let per = started.elapsed() / n;
    println!("filter + key + transform: {per:?} per message ({n} messages, {bytes} bytes out)");
}
