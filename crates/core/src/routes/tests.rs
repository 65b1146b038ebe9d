#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const ORDERS: &str = r#"
[[routes]]
name = "orders"
target = "http://127.0.0.1:8081/orders"
operation = "POST"
filter = '.total > 0'
transform = '{id: .orderId, amount: .total}'
key = '.orderId | tostring'
headers = { "X-Source" = "shop" }
vault_secret = "orders-token"
"#;

fn orders() -> RouteSet {
    RouteSet::from_toml(ORDERS).unwrap()
}

fn one(def: serde_json::Value) -> Result<RouteSet, RouteError> {
    RouteSet::from_json(json!({ "routes": [def] }).to_string().as_bytes())
}

fn route(extra: serde_json::Value) -> RouteSet {
    let mut def = json!({"name": "r", "target": "https://api.example.com/v1"});
    def.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    one(def).unwrap()
}

#[test]
fn the_issue_example_filters_keys_and_transforms() {
    let set = orders();
    let r = set.get("orders").unwrap();
    let data = json!({"orderId": 7, "total": 12.5, "junk": 1});
    assert!(r.filter(&data).unwrap());
    assert!(!r.filter(&json!({"orderId": 8, "total": 0})).unwrap());
    assert_eq!(r.key(&data).unwrap().as_deref(), Some("7"));
    let call = r.resolve(&data).unwrap();
    assert_eq!(call.operation, "POST");
    assert_eq!(call.url, "http://127.0.0.1:8081/orders");
    assert_eq!(call.payload.as_deref(), Some(r#"{"id":7,"amount":12.5}"#));
    assert_eq!(call.headers.len(), 1);
    assert_eq!(call.headers[0].key, "X-Source");
    assert_eq!(call.vault_secret.as_deref(), Some("orders-token"));
    assert_eq!(call.vault_secret_header, None);
}

#[test]
fn json_and_toml_forms_round_trip() {
    let set = orders();
    let again = RouteSet::from_json(set.to_json().as_bytes()).unwrap();
    assert_eq!(again.to_json(), set.to_json());
    assert_eq!(again.names(), vec!["orders"]);
    assert!(set.get("nope").is_none());
    let def = again.get("orders").unwrap().def();
    assert_eq!(def.key.as_deref(), Some(".orderId | tostring"));
    // Other tables of a config file are not the routes' business.
    let mut config = String::from("[stack]\nport = 1\n");
    config.push_str(ORDERS);
    assert_eq!(
        RouteSet::from_toml(&config).unwrap().names(),
        vec!["orders"]
    );
    assert!(RouteSet::from_toml("").unwrap().is_empty());
}

#[test]
fn unknown_keys_camel_case_and_duplicates_are_refused() {
    let e = one(json!({"name": "a", "target": "https://h/x", "vaultSecret": "s"})).unwrap_err();
    assert!(
        matches!(e, RouteError::Syntax(ref m) if m.contains("vaultSecret")),
        "{e}"
    );
    let e = RouteSet::from_toml(
        "[[routes]]\nname = \"a\"\ntarget = \"https://h/\"\nfitler = \"true\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("fitler"), "{e}");
    let e = RouteSet::from_json(br#"{"routes": [], "extra": 1}"#).unwrap_err();
    assert!(matches!(e, RouteError::Syntax(_)));
    let twice = json!({"routes": [
        {"name": "a", "target": "https://h/x"}, {"name": "a", "target": "https://h/y"}]});
    let e = RouteSet::from_json(twice.to_string().as_bytes()).unwrap_err();
    assert_eq!(e, RouteError::Duplicate { route: "a".into() });
}

#[test]
fn names_follow_the_pattern() {
    for bad in ["", "Orders", "or ders", "or_ders", &"a".repeat(65)] {
        let e = one(json!({"name": bad, "target": "https://h/x"})).unwrap_err();
        assert_eq!(e.field(), Some(Field::Name), "{bad:?}: {e}");
    }
    for good in ["a", "orders-2", &"a".repeat(64)] {
        one(json!({"name": good, "target": "https://h/x"})).unwrap();
    }
}

#[test]
fn targets_follow_the_sample_rules() {
    for (target, needle) in [
        ("not a url", "absolute"),
        ("ftp://h/x", "https"),
        ("https://user:pw@h/x", "credentials"),
        ("https://h/x\r\nX: y", "control"),
        ("https://h/x#frag", "fragment"),
    ] {
        let e = one(json!({"name": "a", "target": target})).unwrap_err();
        assert_eq!(e.field(), Some(Field::Target), "{target}");
        assert!(e.to_string().contains(needle), "{target}: {e}");
        assert!(!e.to_string().contains("pw"), "{e}");
    }
    let e = one(json!({"name": "a", "target": "https://h/x?v=1", "path": "\"/1\""})).unwrap_err();
    assert!(e.to_string().contains("query"), "{e}");
    // The target's own host is allowed; http only where the deployment allows it.
    let set = one(json!({"name": "a", "target": "http://10.0.0.1:81/x"})).unwrap();
    set.check_scheme(true).unwrap();
    let e = set.check_scheme(false).unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
}

#[test]
fn a_default_status_callback_follows_the_request_rules_and_names_its_route() {
    // Form, credentials and control characters: refused at load.
    for (callback, needle) in [
        ("not a url", "absolute"),
        ("ftp://h/cb", "https"),
        ("https://user:pw@h/cb", "credentials"),
        ("https://h/cb\r\nX: y", "control"),
    ] {
        let e =
            one(json!({"name": "orders", "target": "https://h/x", "status_callback": callback}))
                .unwrap_err();
        assert_eq!(e.field(), Some(Field::StatusCallback), "{callback}");
        let text = e.to_string();
        assert!(
            text.contains("\"orders\"")
                && text.contains("status_callback")
                && text.contains(needle),
            "{callback}: {text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }
    // The deployment's allow-list and scheme rule, as for a request's statusCallback.
    let set = one(json!({"name": "orders", "target": "https://h/x",
        "status_callback": "http://app.example.com/cb"}))
    .unwrap();
    let policy = |list: &str, allow_http| crate::message::Policy {
        allow_list: crate::message::AllowList::parse(list).unwrap(),
        allow_http,
    };
    set.check_callbacks(&policy("app.example.com", true))
        .unwrap();
    let e = set
        .check_callbacks(&policy("app.example.com", false))
        .unwrap_err();
    assert!(e.to_string().contains("https"), "{e}");
    let e = set.check_callbacks(&policy("h", true)).unwrap_err();
    assert_eq!(e.field(), Some(Field::StatusCallback));
    assert!(e.to_string().contains("\"orders\""), "{e}");
    // Both forms carry it.
    let toml = RouteSet::from_toml(
        "[[routes]]\nname = \"orders\"\ntarget = \"https://h/x\"\nstatus_callback = \"https://app.example.com/cb\"\n",
    )
    .unwrap();
    let again = RouteSet::from_json(toml.to_json().as_bytes()).unwrap();
    assert_eq!(
        again
            .get("orders")
            .unwrap()
            .def()
            .status_callback
            .as_deref(),
        Some("https://app.example.com/cb")
    );
    assert!(toml
        .to_json()
        .contains(r#""status_callback":"https://app.example.com/cb""#));
}

#[test]
fn headers_follow_the_sample_rules_and_are_never_echoed() {
    let cases = [
        (json!({"Authorization": "Bearer s3cret"}), "authorization"),
        (json!({"X-Api-Key": "s3cret"}), "credential"),
        (json!({"Bad Name": "s3cret"}), "legal header name"),
        (json!({"X-Ok": "s3cret\r\nEvil: 1"}), "CR, LF"),
    ];
    for (headers, needle) in cases {
        let e = one(json!({"name": "a", "target": "https://h/x", "headers": headers})).unwrap_err();
        assert_eq!(e.field(), Some(Field::Headers), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    let e = one(json!({"name": "a", "target": "https://h/x", "vault_secret_header": "X-Key"}))
        .unwrap_err();
    assert_eq!(e.field(), Some(Field::VaultSecretHeader));
    assert!(e.to_string().contains("vault_secret"), "{e}");
    let e =
        one(json!({"name": "a", "target": "https://h/x", "vault_secret": "no/slash"})).unwrap_err();
    assert_eq!(e.field(), Some(Field::VaultSecret));
}

#[test]
fn programs_that_do_not_compile_name_route_field_and_position() {
    let e = one(json!({"name": "orders", "target": "https://h/x", "transform": "{id: .orderId"}))
        .unwrap_err();
    assert!(
        matches!(
            e,
            RouteError::Compile {
                field: Field::Transform,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("route \"orders\": transform does not compile"),
        "{e}"
    );
    let e = one(json!({"name": "orders", "target": "https://h/x", "filter": "nosuchfn(1)"}))
        .unwrap_err();
    assert!(e.to_string().contains("undefined filter nosuchfn/1"), "{e}");
    // The process environment and process exit are not for routes.
    for denied in ["env", "$ENV", "halt", "halt_error(1)", "input"] {
        let e =
            one(json!({"name": "a", "target": "https://h/x", "transform": denied})).unwrap_err();
        assert!(matches!(e, RouteError::Compile { .. }), "{denied}: {e}");
    }
    let e = one(json!({"name": "a", "target": "https://h/x", "operation": "GET"})).unwrap_err();
    assert_eq!(e.field(), Some(Field::Operation), "{e}");
}

#[test]
fn operation_may_be_a_word_or_a_program() {
    let set = route(json!({"operation": "put"}));
    assert_eq!(
        set.get("r").unwrap().resolve(&json!({})).unwrap().operation,
        "PUT"
    );
    let set = route(json!({"operation": "if .deleted then \"DELETE\" else \"patch\" end"}));
    let r = set.get("r").unwrap();
    let call = r.resolve(&json!({"deleted": true})).unwrap();
    assert_eq!((call.operation.as_str(), call.payload), ("DELETE", None));
    assert_eq!(
        r.resolve(&json!({"deleted": false})).unwrap().operation,
        "PATCH"
    );
    let set = route(json!({"operation": "\"GET\""}));
    let e = set.get("r").unwrap().resolve(&json!({})).unwrap_err();
    assert!(
        matches!(
            e,
            RouteError::Output {
                field: Field::Operation,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn without_a_transform_the_data_goes_as_sent() {
    let set = route(json!({}));
    let input = Input::from_json(r#"{"b": 1.50, "a":  2}"#).unwrap();
    let call = set.get("r").unwrap().resolve_input(&input).unwrap();
    assert_eq!(call.payload.as_deref(), Some(r#"{"b": 1.50, "a":  2}"#));
    assert!(Input::from_json("{").is_err());
}

#[test]
fn path_is_appended_percent_encoded_and_cannot_escape() {
    let set = route(json!({"path": "\"/orders/\\(.id)\""}));
    let r = set.get("r").unwrap();
    let url = |id: serde_json::Value| r.resolve(&json!({"id": id})).map(|c| c.url);
    assert_eq!(
        url(json!(7)).unwrap(),
        "https://api.example.com/v1/orders/7"
    );
    assert_eq!(
        url(json!("a b%")).unwrap(),
        "https://api.example.com/v1/orders/a%20b%25"
    );
    assert_eq!(
        url(json!("x/")).unwrap(),
        "https://api.example.com/v1/orders/x/"
    );
    for bad in ["..", ".", "a//b", "a?x=1", "a#f", "a\\b", "a\nb", "a\u{0}b"] {
        let e = url(json!(bad)).unwrap_err();
        assert!(
            matches!(
                e,
                RouteError::Output {
                    field: Field::Path,
                    ..
                }
            ),
            "{bad:?}: {e}"
        );
    }
    let set = route(json!({"path": ".id"}));
    let r = set.get("r").unwrap();
    assert_eq!(
        r.resolve(&json!({"id": 42})).unwrap().url,
        "https://api.example.com/v1/42"
    );
    assert_eq!(
        r.resolve(&json!({"id": ""})).unwrap().url,
        "https://api.example.com/v1"
    );
    assert!(r.resolve(&json!({"id": {"a": 1}})).is_err());
    assert!(r.resolve(&json!({})).is_err(), "null is not a path");
}

#[test]
fn key_yields_a_string_or_none() {
    let set = route(json!({"key": ".k"}));
    let r = set.get("r").unwrap();
    assert_eq!(r.key(&json!({"k": "a"})).unwrap().as_deref(), Some("a"));
    assert_eq!(r.key(&json!({"k": 5})).unwrap().as_deref(), Some("5"));
    assert_eq!(r.key(&json!({})).unwrap(), None);
    assert!(r.key(&json!({"k": [1]})).is_err());
    assert!(r.key(&json!({"k": "x".repeat(2000)})).is_err());
    assert_eq!(
        route(json!({})).get("r").unwrap().key(&json!({})).unwrap(),
        None
    );
}

#[test]
fn runtime_errors_carry_jaqs_message_and_the_route() {
    let set = route(json!({"transform": "{id: .order.id}"}));
    let e = set
        .get("r")
        .unwrap()
        .resolve(&json!({"order": 5}))
        .unwrap_err();
    assert!(matches!(
        e,
        RouteError::Eval {
            field: Field::Transform,
            source: EvalError::Jq(_),
            ..
        }
    ));
    let text = e.to_string();
    assert!(
        text.starts_with("route \"r\": transform failed: cannot index"),
        "{text}"
    );
    let set = route(json!({"transform": "error(\"no total\")"}));
    let e = set.get("r").unwrap().resolve(&json!({})).unwrap_err();
    assert_eq!(e.to_string(), "route \"r\": transform failed: no total");
    let set = route(json!({"transform": ".[]"}));
    let e = set.get("r").unwrap().resolve(&json!([1, 2])).unwrap_err();
    assert!(e.to_string().contains("more than one output"), "{e}");
    let set = route(json!({"transform": "empty"}));
    assert!(set.get("r").unwrap().resolve(&json!({})).is_err());
}

/// Runs `program` as a transform and returns its error, within a generous wall-clock bound
/// so a hang fails the test rather than the suite.
fn hostile(program: &str) -> RouteError {
    // A time cap far above the others, so the bound each test names is the one that fires
    // (an unoptimised test build runs jaq's steps slowly).
    let limits = Limits {
        time: Duration::from_secs(10),
        ..Limits::default()
    };
    let def: RouteDef = serde_json::from_value(
        json!({"name": "r", "target": "https://api.example.com/v1", "transform": program}),
    )
    .unwrap();
    let set = RouteSet::with_limits(vec![def], limits).unwrap();
    let started = Instant::now();
    let e = set.get("r").unwrap().resolve(&json!({"a": 1})).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{program}: {:?}",
        started.elapsed()
    );
    e
}

fn bound(e: &RouteError) -> &EvalError {
    match e {
        RouteError::Eval { source, .. } => source,
        other => panic!("not an evaluation error: {other}"),
    }
}

#[test]
fn endless_programs_stop_at_the_step_limit() {
    for program in [
        "[repeat(1)]",
        "last(repeat(1))",
        "reduce repeat(1) as $x (0; . + $x)",
        "until(false; .)",
        "def f: f; f",
        "[range(1e15)] | length",
        "[limit(1e9; repeat(1))]",
    ] {
        let e = hostile(program);
        assert!(
            matches!(bound(&e), EvalError::Steps(_) | EvalError::Time(_)),
            "{program}: {e}"
        );
        assert!(
            e.to_string()
                .starts_with("route \"r\": transform failed: exceeded"),
            "{e}"
        );
    }
    // An endless generator at the top is refused at its second output.
    assert_eq!(bound(&hostile("repeat(.)")), &EvalError::TooMany);
    // A filter takes only the first output.
    let set = route(json!({"filter": "repeat(true)"}));
    assert!(set.get("r").unwrap().filter(&json!({})).unwrap());
}

#[test]
fn deep_recursion_stops_before_the_stack_runs_out() {
    for program in ["def f: [f]; f", "def f: 1 + f; f"] {
        let e = hostile(program);
        assert!(
            matches!(bound(&e), EvalError::Depth(_) | EvalError::Steps(_)),
            "{program}: {e}"
        );
    }
    // Run on a thread with a small stack, as a runtime worker's: the guard must fire first.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| bound(&hostile("def f: [f]; f")).clone())
        .unwrap();
    assert!(matches!(
        handle.join().unwrap(),
        EvalError::Depth(_) | EvalError::Steps(_)
    ));
}

#[test]
fn deeply_nested_results_are_dropped_without_overflowing_a_small_stack() {
    // The deepest values (and chains of closures) the step limit lets a program build,
    // dropped when it stops, on a 2 MiB thread (a tokio worker's stack): dropping them
    // recurses once per level.
    for program in [
        "reduce range(1e9) as $i (0; [.])",
        "def f(x): f([x]); f(.)",
        "def f(x): f({a: x}); f(.)",
    ] {
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let set = route(json!({"transform": program}));
                set.get("r")
                    .unwrap()
                    .resolve(&json!({}))
                    .map(|c| c.payload.map(|p| p.len()))
            })
            .unwrap();
        let result = handle.join().unwrap();
        assert!(
            matches!(result, Err(RouteError::Eval { .. })),
            "{program}: {result:?}"
        );
    }
}

#[test]
fn huge_outputs_are_refused() {
    let e = hostile("[range(200000)] | map(tostring) | join(\"xxxxxxxxxx\")");
    assert!(
        matches!(bound(&e), EvalError::Steps(_) | EvalError::OutputSize(_)),
        "{e}"
    );
    let e = hostile("\"x\" * 2000000");
    assert_eq!(
        bound(&e),
        &EvalError::OutputSize(crate::message::MAX_MESSAGE_BYTES)
    );
}

#[test]
fn the_time_cap_stops_slow_steps() {
    let limits = Limits {
        steps: u64::MAX,
        time: Duration::from_millis(20),
        ..Limits::default()
    };
    let def: RouteDef = serde_json::from_value(
        json!({"name": "r", "target": "https://h/x", "transform": "last(range(1e12))"}),
    )
    .unwrap();
    let set = RouteSet::with_limits(vec![def], limits).unwrap();
    let started = Instant::now();
    let e = set.get("r").unwrap().resolve(&json!({})).unwrap_err();
    assert_eq!(bound(&e), &EvalError::Time(Duration::from_millis(20)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_route_set_is_shared_across_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<RouteSet>();
}
