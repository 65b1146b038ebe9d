//! `datasync retry`: replays an error stream of a running stack through `POST /stream/retry`
//! (group mode), once or until nothing is left that is due.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use datasync_local::stack::streams::StreamRole;
use retry::api::{GroupAnswer, GroupModeRequest};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::status::{unreachable, Found, Role, StackArgs};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Calls POST /stream/retry in group mode ({\"stream\",\"max\"}): the stack remembers how far it got.
What fails again is routed again; messages whose notBefore is still in the future wait, and
--until-empty stops there and says when the next one is due. A call that delivers none of its
messages ends the run with exit status 1: the target is likely still failing, and going on would
read back what the run itself routed again (a dead letter is announced again each time). Progress
goes to stderr (on a terminal), the summary to stdout.

Examples:
  datasync retry --stream service-unavailable --until-empty
  datasync retry --stream default --max 500 --data-dir /tmp/ds
  datasync retry --stream dead-letter --max 1   (a probe: one message, before the rest)")]
pub struct Args {
    /// The error stream: service-unavailable (or serviceUnavailable, errors-service-unavailable),
    /// internal-server (internalserver, errors-internal-server), unrecoverable, default,
    /// dead-letter; or the stream's full name as `datasync status` prints it (e.g.
    /// datasync-errors-default), or its OCID.
    #[arg(long, value_name = "NAME", required_unless_present = "release_key")]
    pub stream: Option<String>,
    /// Release a parked key instead: its blocker leaves the parked keys, so the messages
    /// waiting behind it are attempted in order (see docs/ordering.md). KEY is the message
    /// key as text.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["stream", "until_empty", "dry_run", "group"])]
    pub release_key: Option<String>,
    /// Keep calling until the stream is empty or its next message is not yet due.
    #[arg(long)]
    pub until_empty: bool,
    /// Messages per call (1 to 10000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max: u32,
    /// Report what is due without delivering anything.
    #[arg(long)]
    pub dry_run: bool,
    /// The consumer group keeping the position (default: the function's retry group).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// With --until-empty: the most calls to make.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_calls: u32,
    #[command(flatten)]
    pub stack: StackArgs,
}

/// The OCID of the stream `name` names, among `streams` (full name → OCID, as in
/// `endpoints.json`): an OCID as it is; a full stream name (`datasync-errors-default`, as
/// `datasync status` prints it); or an error stream's short name, Terraform suffix or
/// configuration class (`service-unavailable`, `errors-service-unavailable`,
/// `serviceUnavailable`: see [`StreamRole::is_named`]).
///
/// # Errors
/// When nothing matches; the message lists the names that would.
pub fn resolve_stream(
    name: &str,
    streams: Option<&BTreeMap<String, String>>,
) -> anyhow::Result<String> {
    if name.starts_with("ocid1.") {
        return Ok(name.to_owned());
    }
    let role = StreamRole::error_stream_named(name);
    let Some(map) = streams else {
        anyhow::bail!(
            "cannot resolve stream {name:?}: no endpoints.json with stream OCIDs (pass \
             --data-dir of the running stack, or the stream's OCID)"
        );
    };
    if let Some(id) = map.get(name) {
        return Ok(id.clone());
    }
    if let Some(role) = role {
        let wanted = format!("-{}", role.suffix);
        if let Some((_, id)) = map.iter().find(|(full, _)| full.ends_with(&wanted)) {
            return Ok(id.clone());
        }
    }
    anyhow::bail!(
        "unknown stream {name:?}: use one of {} (or a full stream name such as {}, or an OCID)",
        StreamRole::error_stream_names(),
        map.keys()
            .filter(|full| !full.ends_with("-data"))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[derive(Debug, Default)]
struct Totals {
    calls: u32,
    processed: u64,
    delivered: u64,
    rerouted: u64,
    dead: u64,
}

/// Why a run stopped, and whether that is a failure (exit status 1).
struct Stop {
    why: String,
    failed: bool,
}

impl Stop {
    fn ok(why: impl Into<String>) -> Self {
        Self {
            why: why.into(),
            failed: false,
        }
    }
}

impl Totals {
    /// Adds one call's answer (group mode); the reason to stop, if its answer gives one.
    fn add(&mut self, answer: &GroupAnswer) -> Option<Stop> {
        let processed = answer.processed;
        self.processed += processed;
        self.delivered += answer.delivered;
        self.rerouted += answer.rerouted;
        self.dead += answer.dead_lettered;
        // Failed again, all of them: routed back to the error or dead-letter streams. An
        // error stream's failures wait for their notBefore, but a dead letter is appended at
        // once, so without this stop `--until-empty` would read back and re-send (and
        // re-announce) its own failures until --max-calls.
        if processed > 0 && answer.delivered == 0 {
            return Some(Stop {
                why: format!(
                    "stopped: none of the last call's {processed} message(s) was delivered; the \
                     target may still be failing (fix the cause and run again)"
                ),
                failed: true,
            });
        }
        if answer.end_of_stream {
            return Some(Stop::ok("the stream has nothing more to retry"));
        }
        if let Some(due) = answer.next_due_at.as_deref() {
            return Some(Stop::ok(format!(
                "the next message is not due before {due}{}; run again then",
                from_now(due)
            )));
        }
        (processed == 0).then(|| Stop::ok("nothing was due"))
    }
}

/// The group-mode request.
fn request(args: &Args, stream: &str) -> GroupModeRequest {
    GroupModeRequest {
        dry_run: args.dry_run,
        group: args.group.clone(),
        ..GroupModeRequest::new(stream, args.max)
    }
}

/// Calls the retry route and prints a summary.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let found = args.stack.find(Role::Operator)?;
    if let Some(key) = &args.release_key {
        return super::release_key::run(&found, key);
    }
    let name = args.stream.as_deref().unwrap_or_default();
    let stream = resolve_stream(name, found.endpoints.as_ref().map(|e| &e.streams))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body = serde_json::to_string(&request(&args, &stream))?;
    runtime.block_on(calls(&args, &found, &body))
}

/// One answer of the retry route, its body as sent.
pub(super) struct Answer {
    pub(super) status: reqwest::StatusCode,
    pub(super) retry_after: Option<u64>,
    pub(super) text: String,
}

impl Answer {
    /// The body as a group-mode answer. One that is not counts as nothing handled, so the
    /// run ends with "nothing was due" rather than an error (as it always has).
    fn group(&self) -> GroupAnswer {
        serde_json::from_str(&self.text).unwrap_or_default()
    }

    /// The body pretty-printed for the dry-run report: as the function sent it (its keys
    /// sorted), or as a JSON string when it is not JSON.
    fn pretty(&self) -> serde_json::Result<String> {
        let shown: Value =
            serde_json::from_str(&self.text).unwrap_or_else(|_| Value::String(self.text.clone()));
        serde_json::to_string_pretty(&shown)
    }
}

/// An error answer: `{"code","message"}`, the code a string from the function
/// (`fdk::Response::error`) or a number from the gateway. Only string fields are shown.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, deserialize_with = "text_or_none")]
    code: Option<String>,
    #[serde(default, deserialize_with = "text_or_none")]
    message: Option<String>,
}

/// A string field as `Some`; any other JSON value as `None`.
fn text_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOr {
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match TextOr::deserialize(d)? {
        TextOr::Text(s) => Some(s),
        TextOr::Other(_) => None,
    })
}

pub(super) async fn post(
    http: &reqwest::Client,
    found: &Found,
    body: &str,
) -> Result<Answer, reqwest::Error> {
    let mut req = http
        .post(format!("{}/stream/retry", found.gateway))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = &found.key {
        req = req.header("x-api-key", k);
    }
    let answer = req.send().await?;
    let status = answer.status();
    let retry_after = answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let text = answer.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        retry_after,
        text,
    })
}

/// Calls the retry route once, or with --until-empty until a reason to stop.
async fn calls(args: &Args, found: &Found, body: &str) -> anyhow::Result<ExitCode> {
    let tty = std::io::stderr().is_terminal();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut t = Totals::default();
    let started = Instant::now();
    let limit = if args.until_empty {
        args.max_calls.max(1)
    } else {
        1
    };
    let mut busy_waits = 0u32;
    let mut dropped = 0u32;
    let stop = loop {
        if t.calls >= limit {
            break Stop::ok(if args.until_empty {
                format!(
                    "stopped after {} calls (--max-calls); run again to continue",
                    t.calls
                )
            } else {
                String::new()
            });
        }
        let answer = match post(&http, found, body).await {
            Ok(a) => a,
            // A dropped connection (not a refused one) is tried once more: group mode resumes
            // from the committed position, so a repeat only re-delivers (with the same
            // Idempotency-Key) what the lost call had not committed.
            Err(e) if !e.is_connect() && !e.is_timeout() && dropped < 1 => {
                dropped += 1;
                eprintln!("retry: the call failed ({e}); trying once more");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(e) => return Err(unreachable(&found.gateway, &e)),
        };
        if answer.status.as_u16() == 429 && busy_waits < 10 {
            busy_waits += 1;
            let wait = answer.retry_after.unwrap_or(1).min(10);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        if !answer.status.is_success() {
            if tty && t.calls > 0 {
                eprintln!();
            }
            refused(&answer);
            print_summary(args, &t, started);
            return Ok(ExitCode::FAILURE);
        }
        t.calls += 1;
        if args.dry_run {
            println!("{}", answer.pretty()?);
            return Ok(ExitCode::SUCCESS);
        }
        let stop = t.add(&answer.group());
        if tty {
            eprint!(
                "\rretrying {}: {} processed ({} delivered, {} failed again, {} dead-lettered), {} calls",
                args.stream.as_deref().unwrap_or_default(), t.processed, t.delivered, t.rerouted, t.dead, t.calls
            );
            let _ = std::io::stderr().flush();
        }
        if let Some(stop) = stop {
            break stop;
        }
    };
    if tty && t.calls > 0 {
        eprintln!();
    }
    print_summary(args, &t, started);
    if !stop.why.is_empty() {
        println!("{}", stop.why);
    }
    Ok(if stop.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Says why the retry route refused, with a hint where one helps.
fn refused(answer: &Answer) {
    eprintln!("{}", refusal(answer));
}

/// The line [`refused`] prints: the status, a hint, and the body's code and message (the
/// body as sent when it has no message).
pub(super) fn refusal(answer: &Answer) -> String {
    let status = answer.status;
    let hint = match status.as_u16() {
        401 | 403 => " (retry needs the operator key: check --key or endpoints.json)",
        400 => " (check --stream: only the stack's error streams can be retried)",
        _ => "",
    };
    let body: ErrorBody = serde_json::from_str(&answer.text).unwrap_or_default();
    format!(
        "retry refused ({status}){hint}: {} {}",
        body.code.as_deref().unwrap_or(""),
        body.message.as_deref().unwrap_or(&answer.text)
    )
}

/// " (in N s)" for an RFC 3339 time in the future, else "".
fn from_now(at: &str) -> String {
    let Ok(t) = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
    else {
        return String::new();
    };
    let secs = (t - time::OffsetDateTime::now_utc()).as_seconds_f64();
    if secs > 0.0 {
        format!(" (in {:.0} s)", secs.ceil())
    } else {
        String::new()
    }
}

fn print_summary(args: &Args, t: &Totals, started: Instant) {
    println!(
        "retried {} message(s) from {} in {} call(s), {:.1} s: {} delivered, {} failed again \
         (routed again), {} dead-lettered",
        t.processed,
        args.stream.as_deref().unwrap_or_default(),
        t.calls,
        started.elapsed().as_secs_f64(),
        t.delivered,
        t.rerouted,
        t.dead
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(status: u16, text: &str) -> Answer {
        Answer {
            status: reqwest::StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            text: text.to_owned(),
        }
    }

    #[test]
    fn refusals_show_the_code_and_message_or_the_body() {
        assert_eq!(
            refusal(&answer(
                400,
                r#"{"code":"InvalidParameter","message":"stream: not an error stream"}"#
            )),
            "retry refused (400 Bad Request) (check --stream: only the stack's error streams can \
             be retried): InvalidParameter stream: not an error stream"
        );
        // The gateway's own errors carry a numeric code: not shown.
        assert_eq!(
            refusal(&answer(502, r#"{"code":502,"message":"Bad Gateway"}"#)),
            "retry refused (502 Bad Gateway):  Bad Gateway"
        );
        assert_eq!(
            refusal(&answer(500, "upstream exploded")),
            "retry refused (500 Internal Server Error):  upstream exploded"
        );
        assert_eq!(
            refusal(&answer(503, r#"{"code":"Busy"}"#)),
            r#"retry refused (503 Service Unavailable): Busy {"code":"Busy"}"#
        );
    }

    #[test]
    fn answers_add_up_and_say_when_to_stop() {
        let mut t = Totals::default();
        let wire = r#"{"dryRun":false,"processed":3,"delivered":2,"rerouted":1,
            "deadLettered":0,"nextDueAt":null,"endOfStream":false}"#;
        assert!(t.add(&answer(200, wire).group()).is_none());
        assert_eq!((t.processed, t.delivered, t.rerouted, t.dead), (3, 2, 1, 0));
        let done = GroupAnswer {
            processed: 1,
            delivered: 1,
            end_of_stream: true,
            ..GroupAnswer::default()
        };
        let stop = t.add(&done).unwrap();
        assert!(!stop.failed);
        assert_eq!(stop.why, "the stream has nothing more to retry");
        let failing = GroupAnswer {
            processed: 2,
            rerouted: 2,
            ..GroupAnswer::default()
        };
        assert!(t.add(&failing).unwrap().failed);
        let waiting = GroupAnswer {
            next_due_at: Some("2000-01-01T00:00:00Z".into()),
            ..GroupAnswer::default()
        };
        assert_eq!(
            t.add(&waiting).unwrap().why,
            "the next message is not due before 2000-01-01T00:00:00Z; run again then"
        );
        // An answer that is not the contract counts as nothing handled.
        let stop = t.add(&answer(200, "<html>").group()).unwrap();
        assert_eq!(stop.why, "nothing was due");
        assert_eq!(t.processed, 6);
    }

    #[test]
    fn the_dry_run_report_is_the_answer_pretty_printed() {
        assert_eq!(
            answer(200, r#"{"read":5,"due":2}"#).pretty().unwrap(),
            "{\n  \"due\": 2,\n  \"read\": 5\n}"
        );
        assert_eq!(answer(200, "not json").pretty().unwrap(), "\"not json\"");
    }

    #[test]
    fn names_resolve() {
        let streams: BTreeMap<String, String> = [
            ("datasync-errors-service-unavailable", "ocid1.stream.su"),
            ("datasync-errors-internal-server", "ocid1.stream.is"),
            ("datasync-errors-default", "ocid1.stream.d"),
            ("datasync-dead-letter", "ocid1.stream.dl"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = Some(&streams);
        assert_eq!(
            resolve_stream("serviceUnavailable", s).unwrap(),
            "ocid1.stream.su"
        );
        assert_eq!(
            resolve_stream("errors-default", s).unwrap(),
            "ocid1.stream.d"
        );
        assert_eq!(
            resolve_stream("datasync-dead-letter", s).unwrap(),
            "ocid1.stream.dl"
        );
        assert_eq!(
            resolve_stream("ocid1.stream.x", None).unwrap(),
            "ocid1.stream.x"
        );
        let e = resolve_stream("nope", s).unwrap_err().to_string();
        assert!(e.contains("serviceUnavailable"), "{e}");
    }

    #[test]
    fn every_form_the_readme_and_status_print_is_accepted() {
        let streams: BTreeMap<String, String> = [
            ("datasync-errors-service-unavailable", "su"),
            ("datasync-errors-internal-server", "is"),
            ("datasync-errors-unrecoverable", "un"),
            ("datasync-errors-default", "d"),
            ("datasync-dead-letter", "dl"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = Some(&streams);
        for (names, id) in [
            (
                &[
                    "service-unavailable",
                    "serviceUnavailable",
                    "errors-service-unavailable",
                    "datasync-errors-service-unavailable",
                ][..],
                "su",
            ),
            (
                &[
                    "internal-server",
                    "internalserver",
                    "errors-internal-server",
                    "datasync-errors-internal-server",
                ][..],
                "is",
            ),
            (
                &[
                    "unrecoverable",
                    "errors-unrecoverable",
                    "datasync-errors-unrecoverable",
                ][..],
                "un",
            ),
            (
                &["default", "errors-default", "datasync-errors-default"][..],
                "d",
            ),
            (&["dead-letter", "datasync-dead-letter"][..], "dl"),
        ] {
            for name in names {
                assert_eq!(resolve_stream(name, s).unwrap(), id, "{name}");
            }
        }
        let e = resolve_stream("service", s).unwrap_err().to_string();
        for listed in [
            "service-unavailable (serviceUnavailable, errors-service-unavailable)",
            "internal-server (internalserver, errors-internal-server)",
            "dead-letter",
            "datasync-errors-default",
        ] {
            assert!(e.contains(listed), "{listed}: {e}");
        }
    }
}
