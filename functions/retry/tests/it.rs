//! retry against the emulator and a scripted target on real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../process/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::*;
use datasync_core::classify::ErrorClass;
use datasync_core::message::{rfc3339, Envelope};
use datasync_core::oci::streaming::PutMessage;
use datasync_local::target::Reply;
use fdk::agent::{gateway_request, gateway_response, Invoker};
use fdk::Context;
use retry::Retry;
use serde_json::{json, Value};

fn ctx() -> Context {
    Context::for_test("call-retry")
}

async fn seed(stack: &Stack, stream: &str, envelopes: &[Envelope]) {
    let messages: Vec<PutMessage> = envelopes
        .iter()
        .map(|e| PutMessage::new(None, e.encode().unwrap()))
        .collect();
    let stored = stack.streams.put_messages(stream, &messages).await.unwrap();
    assert!(stored.iter().all(Result::is_ok));
}

async fn call(retry: &Retry, body: Value) -> (u16, Value) {
    let answer = retry
        .handle(&ctx(), &serde_json::to_vec(&body).unwrap())
        .await;
    (
        answer.status.as_u16(),
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

/// Serves `retry` on a Unix socket; calls go through the gateway mapping.
async fn over_socket(stack: &Stack, retry: Retry) -> Invoker {
    let retry = Arc::new(retry);
    serve_on_socket(stack, move |ctx, body| {
        let retry = Arc::clone(&retry);
        async move { retry.handle(&ctx, &body).await }
    })
    .await
}

async fn via_gateway(invoker: &mut Invoker, body: Value) -> (u16, Value) {
    let client = http::Request::post("/stream/retry")
        .header("content-type", "application/json")
        .body(Bytes::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let deadline = SystemTime::now() + Duration::from_secs(30);
    let call = gateway_request(client, "call-gw", deadline).unwrap();
    let answer = gateway_response(invoker.call(call, Duration::from_secs(31)).await.unwrap());
    (
        answer.status().as_u16(),
        serde_json::from_slice(answer.body()).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn sample_mode_reads_exactly_n_and_reports_honest_offsets_and_end() {
    let stack = Stack::start().await;
    let su = stack.ids.service_unavailable.clone();
    let envelopes: Vec<Envelope> = (0..4)
        .map(|i| stack.envelope(&format!("/o/{i}"), "POST", json!({"i": i})))
        .collect();
    seed(&stack, &su, &envelopes).await;
    let mut invoker = over_socket(&stack, Retry::from_config(&stack.config)).await;
    let request = |after: i64| {
        json!({
            "streamOCIDToRetry": su, "noOfMessagesToProcess": 2, "readAfterOffset": after,
            "readPartition": "0", "errormapping": [],
        })
    };
    let (status, answer) = via_gateway(&mut invoker, request(-1)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"lastReadOffset": 1, "processedmessages": 2, "failedMessages": 0, "deadLettered": 0, "endOfStream": false})
    );
    assert_eq!(stack.target.requests().len(), 2, "N messages, not N+1");
    // Exactly N left: the sample would miss the end here.
    let (_, answer) = via_gateway(&mut invoker, request(1)).await;
    assert_eq!(answer["lastReadOffset"], 3);
    assert_eq!(answer["endOfStream"], true);
    let (_, answer) = via_gateway(&mut invoker, request(3)).await;
    assert_eq!(
        answer,
        json!({"lastReadOffset": 3, "processedmessages": 0, "failedMessages": 0, "deadLettered": 0, "endOfStream": true})
    );
    let paths: Vec<String> = stack
        .target
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert_eq!(paths, vec!["/o/0", "/o/1", "/o/2", "/o/3"]);
    // The ids travel with the messages: same Idempotency-Key as the first delivery would use.
    assert_eq!(
        stack.target.requests()[0].header("idempotency-key"),
        envelopes[0].id.as_deref()
    );

    // Offsets beyond 32 bits are accepted as offsets.
    let (status, answer) = via_gateway(&mut invoker, request(4_294_967_296)).await;
    assert!(
        status == 200
            || !answer["message"]
                .as_str()
                .unwrap_or("")
                .contains("must be -1"),
        "{status} {answer}"
    );
    stack.assert_no_token_leaked().await;
}

#[tokio::test]
async fn sample_mode_routes_by_errormapping_and_survives_a_missing_unexpected_error() {
    let stack = Stack::start().await;
    let is = stack.ids.internal_server.clone();
    let t = &stack.target;
    t.script("/m404", [Reply::status(404)]);
    t.script("/m503", [Reply::status(503)]);
    t.script("/m500", [Reply::status(500)]);
    t.script("/reset", [Reply::reset()]);
    let envelopes: Vec<Envelope> = ["/m404", "/m503", "/m500", "/reset", "/ok"]
        .iter()
        .map(|p| stack.envelope(p, "PUT", json!({})))
        .collect();
    seed(&stack, &is, &envelopes).await;
    let retry = Retry::from_config(&stack.config);
    let (status, answer) = call(
        &retry,
        json!({
            "streamOCIDToRetry": is, "noOfMessagesToProcess": 10, "readAfterOffset": -1,
            "readPartition": 0,
            "errormapping": [
                {"responsecode": "404", "stream": stack.ids.unrecoverable},
                {"responsecode": "5xx", "stream": stack.ids.default},
                {"responsecode": 500, "stream": stack.ids.internal_server},
            ],
        }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["processedmessages"], 1);
    assert_eq!(answer["failedMessages"], 4);
    assert_eq!(answer["lastReadOffset"], 4);
    let path_of = |e: &Envelope| {
        e.message
            .target_rest_api
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let un: Vec<String> = stack
        .envelopes_in(&stack.ids.unrecoverable)
        .await
        .iter()
        .map(|(_, e)| path_of(e))
        .collect();
    assert_eq!(un, vec!["m404"]);
    let df: Vec<String> = stack
        .envelopes_in(&stack.ids.default)
        .await
        .iter()
        .map(|(_, e)| path_of(e))
        .collect();
    assert_eq!(df, vec!["m503"]);
    // The exact code wins over the class; the retried stream gets the 500 back at its end.
    let is_now: Vec<(String, u32)> = stack
        .envelopes_in(&is)
        .await
        .iter()
        .map(|(_, e)| (path_of(e), e.attempt))
        .collect();
    assert_eq!(is_now.last().unwrap(), &("m500".to_owned(), 1));
    // No unexpectedError mapping: the reset goes to its class's stream instead of crashing.
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 1);
    assert_eq!(
        su[0].1.last_error.as_ref().unwrap().class,
        ErrorClass::Connect
    );
    stack.assert_no_token_leaked().await;
}

#[tokio::test]
async fn client_errors_are_400_naming_the_field() {
    let stack = Stack::start().await;
    let retry = Retry::from_config(&stack.config);
    let su = stack.ids.service_unavailable.clone();
    let base = json!({
        "streamOCIDToRetry": su, "noOfMessagesToProcess": 5, "readAfterOffset": -1,
        "readPartition": "0", "errormapping": [],
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (
            with("streamOCIDToRetry", json!(stack.ids.other)),
            "streamOCIDToRetry",
        ),
        (
            with("streamOCIDToRetry", json!(stack.ids.data)),
            "streamOCIDToRetry",
        ),
        (
            with("noOfMessagesToProcess", json!(0)),
            "noOfMessagesToProcess",
        ),
        (with("readAfterOffset", json!(-2)), "readAfterOffset"),
        (with("readPartition", json!("zero")), "readPartition"),
        (
            with(
                "errormapping",
                json!([{"responsecode": "404", "stream": stack.ids.other}]),
            ),
            "errormapping[0].stream",
        ),
        (
            with(
                "errormapping",
                json!([{"responsecode": "teapot", "stream": su}]),
            ),
            "errormapping[0].responsecode",
        ),
        (json!({"stream": stack.ids.other}), "stream"),
        (json!({"stream": su, "max": 0}), "max"),
        (json!({"nothing": 1}), "streamOCIDToRetry"),
    ] {
        let (status, answer) = call(&retry, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["code"], "InvalidParameter");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }
    let answer = retry.handle(&ctx(), b"{not json").await;
    assert_eq!(answer.status, 400);

    // Misconfigured: 500 naming the key.
    let broken: fdk::Config = stack
        .config
        .iter()
        .filter(|(k, _)| *k != "notification_topic_ocid")
        .collect();
    let (status, answer) = call(&Retry::from_config(&broken), base).await;
    assert_eq!(status, 500);
    assert_eq!(answer["code"], "FunctionMisconfigured");
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("notification_topic_ocid"));
}

#[tokio::test]
async fn group_mode_stops_at_the_first_message_not_due_and_commits_only_what_it_handled() {
    let stack = Stack::start().await;
    let df = stack.ids.default.clone();
    stack.target.script("/g/tired", [Reply::status(503)]);
    let past = rfc3339(SystemTime::now() - Duration::from_secs(5));
    let later = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let mut list = Vec::new();
    for (path, not_before, attempt) in [
        ("/g/0", past.clone(), 1),
        ("/g/tired", past.clone(), 7),
        ("/g/later", later.clone(), 1),
        ("/g/3", past.clone(), 1),
    ] {
        let mut e = stack.envelope(path, "POST", json!({}));
        e.not_before = Some(not_before);
        e.attempt = attempt;
        list.push(e);
    }
    seed(&stack, &df, &list).await;
    let retry = Retry::from_config(&stack.config);

    let (status, answer) = call(&retry, json!({"stream": df, "dryRun": true})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["due"], 2);
    assert_eq!(answer["nextDueAt"], json!(later));
    assert!(
        stack.target.requests().is_empty(),
        "a dry run delivers nothing"
    );

    let (status, answer) = call(&retry, json!({"stream": df, "max": 10})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["processed"], 2);
    assert_eq!(answer["delivered"], 1);
    assert_eq!(answer["deadLettered"], 1);
    assert_eq!(answer["nextDueAt"], json!(later));
    assert_eq!(answer["endOfStream"], false);
    let dl = stack.envelopes_in(&stack.ids.dead_letter).await;
    assert_eq!(dl.len(), 1);
    assert_eq!(
        dl[0].1.last_error.as_ref().unwrap().class,
        ErrorClass::Exhausted
    );
    assert_eq!(dl[0].1.attempt, 8);

    // Again: the committed position is before the message not yet due; nothing is redone.
    let (_, answer) = call(&retry, json!({"stream": df})).await;
    assert_eq!(answer["processed"], 0, "{answer}");
    assert_eq!(stack.target.requests().len(), 2);
    // Another group has its own position.
    let (_, answer) = call(
        &retry,
        json!({"stream": df, "group": "other", "dryRun": true}),
    )
    .await;
    assert_eq!(answer["due"], 2);
    stack.assert_no_token_leaked().await;
}
