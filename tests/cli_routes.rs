//! `datasync routes list` and `datasync routes test` against a configuration file (the running
//! stack's routes are read in `up_routes.rs`): the table and the JSON form; each message's
//! filter result, call and payload with the token's header named by its secret, never a value;
//! exit status 1 when a message would be refused, not when one is filtered out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli_support;

use std::time::Duration;

use cli_support::*;
use serde_json::{json, Value};

const ROUTES: &str = r#"
[connector]
batch_size_in_num = 10

[[routes]]
name = "orders"
target = "https://api.example.com/orders"
operation = "POST"
headers = { x-source = "shop" }
vault_secret = "orders-token"
filter = '.total > 0'
transform = 'if .total > 100 then error("amount too large") else {id: .orderId, amount: .total} end'
key = '.orderId | tostring'

[[routes]]
name = "items"
target = "https://api.example.com/items"
operation = 'if .gone then "DELETE" else "PUT" end'
path = '.id'
"#;

async fn datasync(args: &[&str], stdin: Option<&str>) -> Run {
    run_cli(args, stdin, &[], Duration::from_secs(30)).await
}

fn config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("datasync.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn list_prints_each_route_and_its_json_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir, ROUTES);
    let r = datasync(&["routes", "list", "--config", &file], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let row = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", r.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(r.stdout.starts_with("2 route(s) from "), "{}", r.stdout);
    assert_eq!(
        row("orders"),
        "orders POST https://api.example.com/orders orders-token (in Authorization) x-source filter,transform,key"
    );
    assert!(row("items").ends_with("- - path"), "{}", r.stdout);
    let r = datasync(&["routes", "list", "--config", &file, "--json"], None).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["routes"][0]["name"], "orders");
    assert_eq!(doc["routes"][0]["headers"], json!({"x-source": "shop"}));
    assert_eq!(doc["routes"][1]["path"], ".id");
    // What Terraform uploads is what the functions read.
    let set = datasync_core::routes::RouteSet::from_json(r.stdout.as_bytes()).unwrap();
    assert_eq!(set.names(), ["orders", "items"]);
}

#[tokio::test]
async fn test_shows_the_call_each_message_makes_and_fails_on_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir, ROUTES);
    let lines = "{\"orderId\":7,\"total\":12.5,\"junk\":1}\n{\"orderId\":8,\"total\":0}\n";
    let r = datasync(
        &["routes", "test", "--config", &file, "orders", "-"],
        Some(lines),
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let expected = "\
message 1: filter passed, delivered as:
  stream key: 7
  POST https://api.example.com/orders
  x-source: shop
  Authorization: <the token in Vault secret orders-token>
  Idempotency-Key: <the message id>
  payload: {\"id\":7,\"amount\":12.5}
message 2: filtered out: the filter yielded false, null or nothing (answered 200 {\"filtered\":true}, not stored)
";
    assert_eq!(r.stdout, expected);
    // A transform failing at run time is refused (dead-lettered as transform): exit status 1.
    let array = r#"[{"orderId":9,"total":500},{"orderId":10,"total":1}]"#;
    let r = datasync(
        &["routes", "test", "--config", &file, "orders", "-", "--json"],
        Some(array),
    )
    .await;
    assert_eq!(r.code, Some(1), "{}{}", r.stdout, r.stderr);
    let reports: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports[0]["outcome"], "deadLettered");
    let error = reports[0]["error"].as_str().unwrap();
    assert!(
        error.contains("\"orders\"")
            && error.contains("transform")
            && error.contains("amount too large"),
        "{error}"
    );
    assert_eq!(reports[1]["outcome"], "delivered");
    assert_eq!(
        reports[1]["call"]["payload"],
        json!({"id": 10, "amount": 1})
    );
    assert_eq!(
        reports[1]["call"]["secret"],
        json!({"name": "orders-token", "header": "Authorization"})
    );
    assert!(
        r.stderr.contains("1 of 2 message(s) would be refused"),
        "{}",
        r.stderr
    );
    // A filter that fails is refused at ingest.
    let r = datasync(
        &["routes", "test", "--config", &file, "orders", "-"],
        Some(r#""not an object""#),
    )
    .await;
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("message 1: REFUSED at ingest (400): route \"orders\": filter failed"),
        "{}",
        r.stdout
    );
}

#[tokio::test]
async fn test_computes_operation_and_path_and_a_file_works_like_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir, ROUTES);
    let input = dir.path().join("items.json");
    std::fs::write(&input, r#"[{"id":"a b","gone":true},{"id":5,"n":1}]"#).unwrap();
    let r = datasync(
        &[
            "routes",
            "test",
            "--config",
            &file,
            "items",
            input.to_str().unwrap(),
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(r.code, Some(0), "{}{}", r.stdout, r.stderr);
    let reports: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports[0]["call"]["operation"], "DELETE");
    assert_eq!(
        reports[0]["call"]["url"],
        "https://api.example.com/items/a%20b"
    );
    assert!(
        reports[0]["call"].get("payload").is_none(),
        "{}",
        reports[0]
    );
    assert_eq!(reports[1]["call"]["operation"], "PUT");
    assert_eq!(reports[1]["call"]["url"], "https://api.example.com/items/5");
    assert_eq!(reports[1]["call"]["payload"], json!({"id": 5, "n": 1}));
}

#[tokio::test]
async fn an_unknown_route_or_a_broken_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(&dir, ROUTES);
    let r = datasync(
        &["routes", "test", "--config", &file, "nope", "-"],
        Some("{}"),
    )
    .await;
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr.contains("no route named \"nope\"") && r.stderr.contains("orders, items"),
        "{}",
        r.stderr
    );
    let broken = config(
        &dir,
        "[[routes]]\nname = \"broken\"\ntarget = \"https://a.example/x\"\nfilter = '.total >'\n",
    );
    let r = datasync(&["routes", "list", "--config", &broken], None).await;
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr
            .contains("route \"broken\": filter does not compile"),
        "{}",
        r.stderr
    );
}
