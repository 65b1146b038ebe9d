//! One target host never holds back the others (docs/isolation.md): its share of a batch's
//! time, its circuit breaker, its adaptive concurrency and its retry budget, through the
//! process function against the emulator and real targets on 127.0.0.1 (each port is a host).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use datasync_local::target::ScriptedTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// The stack's configuration with `pairs` added.
fn configured(stack: &Stack, pairs: &[(&str, &str)]) -> fdk::Config {
    let mut config = stack.config.clone();
    for (k, v) in pairs {
        config = config.with(*k, *v);
    }
    config
}

/// A message for `url`.
fn to(stack: &Stack, url: String) -> Envelope {
    let mut e = stack.envelope("/", "POST", json!({"n": 1}));
    e.message.target_rest_api = url;
    e
}

async fn handle(process: &Process, list: &[(Option<&str>, Vec<u8>)]) -> Value {
    let answer = process.handle(&ctx(), &connector_batch(0, list)).await;
    assert_eq!(answer.status, 200);
    serde_json::from_slice(&answer.body).unwrap()
}

/// The answer's report of the host at `addr`.
fn host(answer: &Value, addr: std::net::SocketAddr) -> &Value {
    answer["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == addr.to_string())
        .unwrap_or_else(|| panic!("no report of {addr}: {answer}"))
}

/// The titles of the breaker notifications published so far (waiting up to 2 s for `n`: they
/// are published in the background).
async fn breaker_notes(stack: &Stack, n: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let titles: Vec<String> = stack
            .emulator
            .notifications()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|n| n.title)
            .filter(|t| t.contains("circuit breaker"))
            .collect();
        if titles.len() >= n || started.elapsed() > Duration::from_secs(2) {
            return titles;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_hung_host_is_cut_at_a_quarter_of_its_share_and_never_holds_the_healthy_one() {
    let stack = Stack::start().await;
    let hung = ScriptedTarget::hanging().await.unwrap();
    let process = Process::from_config(&configured(&stack, &[("host_time_share_ms", "2000")]));
    let mut list = Vec::new();
    let mut keyed = Vec::new();
    for i in 0..3 {
        let e = to(&stack, hung.url(&format!("/h/{i}")));
        keyed.push(e.id.clone().unwrap());
        list.push((Some("hung-key"), value(&e)));
    }
    list.push((None, value(&to(&stack, hung.url("/free")))));
    for i in 0..20 {
        list.push((
            None,
            value(&stack.envelope(&format!("/ok/{i}"), "POST", json!({}))),
        ));
    }
    let started = Instant::now();
    let answer = handle(&process, &list).await;
    let took = started.elapsed();
    // A host that never answered gets a quarter of its share per call (500 ms), not all of it.
    assert!(
        took >= Duration::from_millis(500),
        "cut before its allowance"
    );
    assert!(
        took < Duration::from_millis(1800),
        "the batch took {took:?}"
    );
    assert_eq!(answer["delivered"], 20, "{answer}");
    assert_eq!(stack.target.requests().len(), 20);
    assert_eq!(hung.requests().len(), 2, "the keyed first and the free one");
    // The hung host's messages are re-routed as slow, the keyed ones in order behind the first.
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 4);
    let keyed_su: Vec<(String, u32)> = su
        .iter()
        .filter(|(k, _)| k.as_deref() == Some(b"hung-key".as_slice()))
        .map(|(_, e)| (e.id.clone().unwrap(), e.attempt))
        .collect();
    assert_eq!(
        keyed_su,
        vec![
            (keyed[0].clone(), 1),
            (keyed[1].clone(), 0),
            (keyed[2].clone(), 0)
        ]
    );
    for (_, e) in &su {
        assert_eq!(e.last_error.as_ref().unwrap().class, ErrorClass::Slow);
    }
    // Two calls cut at their whole allowance open the breaker (with the default five
    // failures in a row, a cut counts as three).
    assert_eq!(host(&answer, hung.addr())["breaker"], "open");
    assert_eq!(breaker_notes(&stack, 1).await.len(), 1);
    // While it is open the host costs the batch nothing: no call (which would be cut only
    // after 500 ms), so the batch is far from its 2 s share even on a slow machine.
    let started = Instant::now();
    let answer = handle(&process, &list[3..]).await;
    assert_eq!(hung.requests().len(), 2, "a call to an open host: {answer}");
    assert!(started.elapsed() < Duration::from_millis(1500), "{answer}");
}

#[tokio::test]
async fn a_slow_host_that_answers_earns_its_time_through_probes_and_is_delivered() {
    let stack = Stack::start().await;
    // Answers in 300 ms; with a 1 s share a host that never answered gets 250 ms per call.
    let slow = ScriptedTarget::start().await.unwrap();
    slow.set_default(Reply::status(200).delay(Duration::from_millis(300)));
    let config = configured(
        &stack,
        &[
            ("host_time_share_ms", "1000"),
            ("breaker_cool_down_ms", "300"),
        ],
    );
    let process = Process::from_config(&config);
    let batch = |tag: &str, n: usize| -> Vec<(Option<&'static str>, Vec<u8>)> {
        (0..n)
            .map(|i| (None, value(&to(&stack, slow.url(&format!("/{tag}/{i}"))))))
            .collect()
    };
    // Cut at 250 ms: re-routed as slow, and the two cuts open the breaker.
    let answer = handle(&process, &batch("a", 2)).await;
    assert_eq!(answer["delivered"], 0, "{answer}");
    assert_eq!(host(&answer, slow.addr())["breaker"], "open");
    // After the cool-down the probe may run twice the longest cut (500 ms): it is answered,
    // the breaker closes, and the host's mean latency now gives its calls the whole share.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let answer = handle(&process, &batch("p", 1)).await;
    assert_eq!(answer["delivered"], 1, "{answer}");
    assert_eq!(host(&answer, slow.addr())["breaker"], "closed");
    let answer = handle(&process, &batch("c", 6)).await;
    assert_eq!(answer["delivered"], 6, "{answer}");
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 2, "only the first two were re-routed");
}

#[tokio::test]
async fn the_breaker_opens_sends_only_probes_and_closes_announcing_each_change_once() {
    let stack = Stack::start().await;
    stack.target.set_default(Reply::status(503));
    let config = configured(
        &stack,
        &[
            ("breaker_consecutive_failures", "3"),
            ("breaker_cool_down_ms", "400"),
            ("breaker_probes", "1"),
            // One call at a time, so the count of calls made is exact.
            ("per_host_concurrency", "1"),
        ],
    );
    let process = Process::from_config(&config);
    let addr = stack.target.addr();
    let batch =
        |tag: &str, key: Option<&'static str>, n: usize| -> Vec<(Option<&'static str>, Vec<u8>)> {
            (0..n)
                .map(|i| {
                    (
                        key,
                        value(&stack.envelope(&format!("/{tag}/{i}"), "POST", json!({}))),
                    )
                })
                .collect()
        };

    // Three failures open it; the other five are not attempted.
    let answer = handle(&process, &batch("a", None, 8)).await;
    assert_eq!(stack.target.requests().len(), 3);
    assert_eq!(host(&answer, addr)["breaker"], "open", "{answer}");
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 8);
    let untried: Vec<&Envelope> = su
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.attempt == 0)
        .collect();
    assert_eq!(untried.len(), 5);
    for e in &untried {
        let last = e.last_error.as_ref().unwrap();
        assert_eq!(last.class, ErrorClass::ServiceUnavailable);
        assert!(last
            .detail
            .as_deref()
            .unwrap()
            .contains("circuit breaker is open"));
    }
    assert_eq!(breaker_notes(&stack, 1).await.len(), 1);

    // While open: nothing is attempted; a key's messages stay in order behind its first.
    let answer = handle(&process, &batch("k", Some("ord"), 3)).await;
    assert_eq!(answer["delivered"], 0);
    assert_eq!(stack.target.requests().len(), 3, "no call while open");
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    let ord: Vec<String> = su[8..]
        .iter()
        .map(|(_, e)| {
            e.message
                .target_rest_api
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ord, vec!["0", "1", "2"]);

    // After the cool-down one probe goes; it fails and the breaker opens again (only logged).
    tokio::time::sleep(Duration::from_millis(450)).await;
    handle(&process, &batch("p", None, 4)).await;
    assert_eq!(stack.target.requests().len(), 4, "exactly one probe");
    assert_eq!(stack.target.requests()[3].path, "/p/0");

    // The host recovers: the next probe, after two cool-downs (it opened twice in a row),
    // succeeds, the breaker closes, everything goes.
    stack.target.set_default(Reply::status(200));
    tokio::time::sleep(Duration::from_millis(450)).await;
    let answer = handle(&process, &batch("w", Some("ord"), 1)).await;
    assert_eq!(answer["delivered"], 0, "still cooling down: {answer}");
    assert_eq!(stack.target.requests().len(), 4);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let answer = handle(&process, &batch("c", Some("ord"), 4)).await;
    assert_eq!(answer["delivered"], 4, "{answer}");
    assert_eq!(host(&answer, addr)["breaker"], "closed");
    let paths: Vec<String> = stack.target.requests()[4..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, vec!["/c/0", "/c/1", "/c/2", "/c/3"]);
    let notes = breaker_notes(&stack, 2).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(notes[0].ends_with("is open"), "{notes:?}");
    assert!(notes[1].ends_with("is closed"), "{notes:?}");
    // The notifications name the host, never a path.
    for n in stack.emulator.notifications().await.unwrap() {
        assert!(!n.body.contains("/a/"), "{}", n.body);
    }
}

/// A target that answers 429 to every call beyond `limit` in flight, and 200 after `delay`
/// to the others; counts the most calls it ever had in flight.
struct Throttled {
    addr: std::net::SocketAddr,
    limit: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl Throttled {
    async fn start(limit: usize, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = Arc::new(AtomicUsize::new(limit));
        let most = Arc::new(AtomicUsize::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (l, m) = (Arc::clone(&limit), Arc::clone(&most));
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (l, m, f) = (Arc::clone(&l), Arc::clone(&m), Arc::clone(&in_flight));
                tokio::spawn(serve(socket, l, m, f, delay));
            }
        });
        Self { addr, limit, most }
    }
}

/// Serves one keep-alive connection: each request is read whole (headers and a
/// Content-Length body), then answered.
async fn serve(
    mut socket: tokio::net::TcpStream,
    limit: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    delay: Duration,
) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + 4 + length);
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        let status = if now > limit.load(Ordering::SeqCst) {
            "429 Too Many Requests"
        } else {
            tokio::time::sleep(delay).await;
            "200 OK"
        };
        in_flight.fetch_sub(1, Ordering::SeqCst);
        let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
        if socket.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn adaptive_concurrency_settles_near_the_targets_limit_and_climbs_back_when_it_lifts() {
    let stack = Stack::start().await;
    let target = Throttled::start(4, Duration::from_millis(30)).await;
    let process = Process::from_config(&stack.config);
    let url = format!("http://{}/t", target.addr);
    let batch: Vec<(Option<&str>, Vec<u8>)> = (0..60)
        .map(|_| (None, value(&to(&stack, url.clone()))))
        .collect();
    let mut limits = Vec::new();
    for _ in 0..5 {
        let answer = handle(&process, &batch).await;
        limits.push(host(&answer, target.addr)["concurrency"].as_u64().unwrap());
    }
    let settled = *limits.last().unwrap();
    assert!((3..=6).contains(&settled), "limits per batch: {limits:?}");
    // Over a later batch the target sees few calls beyond its limit.
    target.most.store(0, Ordering::SeqCst);
    handle(&process, &batch).await;
    assert!(target.most.load(Ordering::SeqCst) <= 7, "{limits:?}");

    // The limit lifts: the concurrency climbs back towards the ceiling (16).
    target.limit.store(1000, Ordering::SeqCst);
    let mut climbed = Vec::new();
    for _ in 0..8 {
        let answer = handle(&process, &batch).await;
        climbed.push(host(&answer, target.addr)["concurrency"].as_u64().unwrap());
    }
    assert!(
        *climbed.last().unwrap() >= 12,
        "limits per batch: {climbed:?}"
    );
}

#[tokio::test]
async fn during_an_outage_retries_stay_within_the_budget_and_all_are_delivered_after() {
    let stack = Stack::start().await;
    stack.target.set_default(Reply::status(503));
    // The issue's 1,000 messages; its 60 s outage scaled to an 8 s window (long enough for
    // the outage's three batches on a busy machine). The breaker is off so that the budget
    // alone bounds the retries.
    let config = configured(
        &stack,
        &[
            ("breaker_consecutive_failures", "0"),
            ("breaker_failure_percent", "0"),
            ("retry_budget_percent", "20"),
            ("retry_budget_window_seconds", "8"),
        ],
    );
    let process = Process::from_config(&config);
    let retry = |tag: &str, n: usize| -> Vec<(Option<&'static str>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let mut e = stack.envelope(&format!("/{tag}/{i}"), "POST", json!({}));
                e.attempt = 1;
                (None, value(&e))
            })
            .collect()
    };
    let first = |n: usize| -> Vec<(Option<&'static str>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    None,
                    value(&stack.envelope(&format!("/f/{i}"), "POST", json!({}))),
                )
            })
            .collect()
    };
    let calls = || stack.target.requests().len();
    // 40 retries with no first attempts yet: the floor, 10, is attempted.
    handle(&process, &retry("r", 40)).await;
    assert_eq!(calls(), 10);
    // The outage's 1,000 messages: their first attempts all go (only retries are capped) and
    // fail, raising the window's budget to 20% of them: 200 failing retries.
    handle(&process, &first(1000)).await;
    assert_eq!(calls(), 1010);
    // The schedule hands the 1,000 back: 190 more retries go (200 less the 10 spent), the
    // other 810 are re-routed untried to wait for the schedule.
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 1040);
    let round: Vec<(Option<&str>, Vec<u8>)> = su
        .iter()
        .filter(|(_, e)| e.message.target_rest_api.contains("/f/"))
        .map(|(_, e)| (None, value(e)))
        .collect();
    assert_eq!(round.len(), 1000);
    handle(&process, &round).await;
    assert_eq!(calls(), 1200, "retries within 20% of the first attempts");
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    assert_eq!(su.len(), 2040, "nothing lost");
    let waiting = su
        .iter()
        .filter(|(_, e)| {
            e.last_error
                .as_ref()
                .and_then(|l| l.detail.as_deref())
                .is_some_and(|d| d.contains("retry budget"))
        })
        .count();
    assert_eq!(waiting, 30 + 810);

    // The host recovers. In the next window the schedule's rounds (here: the re-routed
    // messages handed to process again) deliver everything: a retry that succeeds gives its
    // place in the budget back, and a retry that finds every place taken by retries in flight
    // waits for one instead of being refused.
    stack.target.set_default(Reply::status(200));
    tokio::time::sleep(Duration::from_millis(8100)).await;
    // The latest version of each message is the one still waiting: the 40 "r" messages from
    // the first batch, the 1,000 from the last round.
    let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
    let mut round: Vec<(Option<&str>, Vec<u8>)> = su[..40]
        .iter()
        .chain(&su[1040..])
        .map(|(_, e)| (None, value(e)))
        .collect();
    let mut from = su.len();
    let mut delivered = 0;
    for _ in 0..12 {
        if round.is_empty() {
            break;
        }
        delivered += handle(&process, &round).await["delivered"]
            .as_u64()
            .unwrap();
        let su = stack.envelopes_in(&stack.ids.service_unavailable).await;
        round = su[from..].iter().map(|(_, e)| (None, value(e))).collect();
        from = su.len();
    }
    assert_eq!(delivered, 1040);
}
