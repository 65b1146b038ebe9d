//! `datasync routes test`: runs messages' data through a route with the functions' own code
//! (the filter as populate runs it at ingest; key, operation, path, headers and transform as
//! process and retry run them at delivery) and prints what would happen to each. Nothing is
//! sent anywhere and no secret is read: the token's header is shown with the secret's name.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use datasync_core::routes::{Input, ResolvedCall, Route};
use serde::Serialize;
use serde_json::value::RawValue;

use super::RoutesSource;
use crate::cmd::send::{parse_input, Input as Messages};

/// Runs messages through a route.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
FILE (or - for stdin) holds the data of one message as a source sends it in \"data\" (any JSON
value), a JSON array of such values (one message each), or JSON lines (one value per line). To test
a message whose data is itself an array, wrap it in an array: [[1,2]].

For each message it prints whether the filter lets it through and, if so, the stream key, the
operation and URL, the headers (the route's static headers, the Vault secret's header with the
secret's name, never a value, and Idempotency-Key, which is the message id), and the payload.
The exit status is 1 when a message would be refused: a filter that fails is refused at ingest
(400), a key, operation, path or transform that fails is dead-lettered at delivery (class
`transform`). A message the filter leaves out is not refused (answered 200 {\"filtered\":true}).

Examples:
  datasync routes test --config datasync.toml orders order.json
  echo '{\"orderId\":7,\"total\":12.5}' | datasync routes test --config datasync.toml orders -
  datasync routes test --data-dir .datasync orders orders.jsonl --json")]
pub struct Args {
    #[command(flatten)]
    pub source: RoutesSource,
    /// Print one JSON object per message instead of text.
    #[arg(long)]
    pub json: bool,
    /// The route.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The messages' data, or `-` for stdin.
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

/// What a route does with one message, as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The message's place in the input, from 1.
    message: usize,
    /// What would happen to it.
    outcome: Outcome,
    /// The filter's result (absent when it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<bool>,
    /// The stream key the route's `key` program gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// The call, when the message would be delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    call: Option<Call>,
    /// Why it would be refused (the route's name and jq's message).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// What would happen to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
enum Outcome {
    /// Accepted and delivered with [`Report::call`].
    Delivered,
    /// Left out by the filter: answered 200 `{"filtered":true}`, not stored.
    Filtered,
    /// The filter failed: populate answers 400.
    RefusedAtIngest,
    /// Accepted, then a program failed at delivery: dead-lettered as `transform`.
    DeadLettered,
}

/// The target call: headers by name, the token's header with the secret's name.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Call {
    operation: String,
    url: String,
    /// The route's static headers, name and value (non-credential by the route's rules).
    headers: Vec<(String, String)>,
    /// The Vault secret's name and the header its token is sent in.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<Secret>,
    /// The payload's JSON text; absent for DELETE.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Box<RawValue>>,
}

#[derive(Debug, Serialize)]
struct Secret {
    name: String,
    header: String,
}

/// Runs the messages of the input through the route and prints a report for each.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (set, from) = args.source.load()?;
    let Some(route) = set.get(&args.name) else {
        let names = set.names();
        anyhow::bail!(
            "no route named {:?} in {from} (routes: {})",
            args.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let text = read_input(&args.input)?;
    let items = match parse_input(&text)? {
        Messages::One(v) => vec![v],
        Messages::Many(v) => v,
    };
    let mut refused = 0;
    for (i, item) in items.iter().enumerate() {
        let report = report(route, i + 1, item);
        if matches!(
            report.outcome,
            Outcome::RefusedAtIngest | Outcome::DeadLettered
        ) {
            refused += 1;
        }
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", text_of(&report));
        }
    }
    if refused > 0 {
        eprintln!(
            "routes test: {refused} of {} message(s) would be refused",
            items.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &std::path::Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// What `route` does with the data `raw`, by the same calls populate, process and retry make.
fn report(route: &Route, message: usize, raw: &RawValue) -> Report {
    let mut r = Report {
        message,
        outcome: Outcome::RefusedAtIngest,
        filter: None,
        key: None,
        call: None,
        error: None,
    };
    let input = match Input::from_json(raw.get()) {
        Ok(input) => input,
        Err(e) => {
            r.error = Some(format!("data is not JSON: {e}"));
            return r;
        }
    };
    match route.filter_input(&input) {
        Ok(true) => r.filter = Some(true),
        Ok(false) => {
            r.filter = Some(false);
            r.outcome = Outcome::Filtered;
            return r;
        }
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    }
    r.outcome = Outcome::DeadLettered;
    let resolved = route
        .key_input(&input)
        .and_then(|key| Ok((key, route.resolve_input(&input)?)));
    match resolved {
        Ok((key, call)) => {
            r.key = key;
            match call_of(call) {
                Ok(call) => {
                    r.call = Some(call);
                    r.outcome = Outcome::Delivered;
                }
                Err(e) => r.error = Some(e),
            }
        }
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

fn call_of(c: ResolvedCall) -> Result<Call, String> {
    let payload = c
        .payload
        .map(RawValue::from_string)
        .transpose()
        .map_err(|e| format!("the payload is not JSON: {e}"))?;
    Ok(Call {
        operation: c.operation,
        url: c.url,
        headers: c.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        secret: c.vault_secret.map(|name| Secret {
            name,
            header: c
                .vault_secret_header
                .unwrap_or_else(|| "Authorization".to_owned()),
        }),
        payload,
    })
}

/// The report as text.
fn text_of(r: &Report) -> String {
    let mut out = String::new();
    let n = r.message;
    match r.outcome {
        Outcome::Filtered => {
            let _ = writeln!(
                out,
                "message {n}: filtered out: the filter yielded false, null or nothing (answered 200 {{\"filtered\":true}}, not stored)"
            );
        }
        Outcome::RefusedAtIngest => {
            let _ = writeln!(
                out,
                "message {n}: REFUSED at ingest (400): {}",
                r.error.as_deref().unwrap_or("")
            );
        }
        Outcome::DeadLettered => {
            let _ = writeln!(
                out,
                "message {n}: filter passed, but delivery would fail: DEAD-LETTERED as transform: {}",
                r.error.as_deref().unwrap_or("")
            );
        }
        Outcome::Delivered => {
            let _ = writeln!(out, "message {n}: filter passed, delivered as:");
            if let Some(key) = &r.key {
                let _ = writeln!(out, "  stream key: {key}");
            }
            if let Some(c) = &r.call {
                let _ = writeln!(out, "  {} {}", c.operation, c.url);
                for (k, v) in &c.headers {
                    let _ = writeln!(out, "  {k}: {v}");
                }
                if let Some(s) = &c.secret {
                    let _ = writeln!(
                        out,
                        "  {}: <the token in Vault secret {}>",
                        s.header, s.name
                    );
                }
                let _ = writeln!(out, "  Idempotency-Key: <the message id>");
                match &c.payload {
                    Some(p) => {
                        let _ = writeln!(out, "  payload: {}", p.get());
                    }
                    None => {
                        let _ = writeln!(out, "  (no payload)");
                    }
                }
            }
        }
    }
    out
}
