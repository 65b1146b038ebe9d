//! `datasync status`: the status of a running stack as tables (or its JSON), and how the
//! operator tools (`send`, `retry`, `status`, `bench --url`) find a running stack.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

/// How a tool finds a running stack: `--data-dir` (its `endpoints.json`), or `--url`/`--key`.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// The data directory of a running `datasync up` (its `endpoints.json` gives the gateway
    /// address, the keys and the stream OCIDs).
    #[arg(long, value_name = "DIR", default_value = ".datasync")]
    pub data_dir: PathBuf,
    /// The gateway base URL, instead of the one in `endpoints.json` (e.g. http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The API key (`x-api-key`), instead of the one in `endpoints.json`.
    #[arg(
        long,
        value_name = "KEY",
        env = "DATASYNC_API_KEY",
        hide_env_values = true
    )]
    pub key: Option<String>,
}

/// Which key of `endpoints.json` a tool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `source_key`: `POST /stream/sync`.
    Source,
    /// `operator_key`: `POST /stream/retry`.
    Operator,
    /// No key (`GET /status`).
    None,
}

/// A running stack as a tool sees it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The gateway base URL, without a trailing slash.
    pub gateway: String,
    /// The key for the tool's role, if any.
    pub key: Option<String>,
    /// `endpoints.json`, when it was read.
    pub endpoints: Option<Value>,
}

fn read_endpoints(dir: &Path) -> anyhow::Result<Value> {
    let file = dir.join("endpoints.json");
    let bytes = std::fs::read(&file).map_err(|e| {
        anyhow::anyhow!(
            "no running stack found: cannot read {} ({e}); start one with `datasync up`, pass \
             --data-dir DIR of a running one, or give --url and --key",
            file.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not valid JSON; restart `datasync up` to rewrite it",
            file.display()
        )
    })
}

impl StackArgs {
    /// Finds the stack: `--url`/`--key` win over `endpoints.json`, which is read only when
    /// something is missing.
    ///
    /// # Errors
    /// When neither gives a gateway URL (or the key the role needs).
    pub fn find(&self, role: Role) -> anyhow::Result<Found> {
        let need_key = role != Role::None && self.key.is_none();
        let endpoints = if self.url.is_none() || need_key {
            Some(read_endpoints(&self.data_dir)?)
        } else {
            std::fs::read(self.data_dir.join("endpoints.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
        };
        let gateway = match (&self.url, &endpoints) {
            (Some(u), _) => u.clone(),
            (None, Some(e)) => e["gateway"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("endpoints.json has no gateway; pass --url"))?,
            (None, None) => anyhow::bail!("no gateway URL: pass --url or --data-dir"),
        };
        let field = match role {
            Role::Source => Some("source_key"),
            Role::Operator => Some("operator_key"),
            Role::None => None,
        };
        let key = match (&self.key, field, &endpoints) {
            (Some(k), _, _) => Some(k.clone()),
            (None, Some(f), Some(e)) => Some(
                e[f].as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("endpoints.json has no {f}; pass --key"))?,
            ),
            _ => None,
        };
        Ok(Found {
            gateway: gateway.trim_end_matches('/').to_owned(),
            key,
            endpoints,
        })
    }
}

/// The error to show when the gateway cannot be reached.
pub fn unreachable(gateway: &str, e: &reqwest::Error) -> anyhow::Error {
    let why = datasync_core::oci::client::error_chain(e);
    if e.is_timeout() {
        return anyhow::anyhow!("the gateway at {gateway} did not answer in time: {why}");
    }
    anyhow::anyhow!(
        "cannot reach the gateway at {gateway}: {why} (is `datasync up` running? endpoints.json \
         may be left from a stopped stack; pass --url to choose another)"
    )
}

/// Shows the status of a running stack: streams with depth and lag, deliveries per second,
/// failures by class, recent notifications and archived objects.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads GET /status of the gateway (no key needed) and prints it as tables; --json prints the JSON.

Examples:
  datasync status
  datasync status --data-dir /tmp/ds --json")]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Print the status JSON (`GET /status`) as it is.
    #[arg(long)]
    pub json: bool,
}

/// Fetches and prints the status.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let found = args.stack.find(Role::None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = format!("{}/status", found.gateway);
    let doc: Value = runtime.block_on(async {
        let answer = reqwest::Client::new()
            .get(&url)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| unreachable(&found.gateway, &e))?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            anyhow::bail!("GET {url} answered {status}: {text}");
        }
        serde_json::from_str(&text)
            .with_context(|| format!("GET {url} did not answer JSON (is this a datasync gateway?)"))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}

/// Formats rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let _ = write!(l, "{c:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
        &mut out,
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How long ago the oldest unconsumed message was appended: `4.2 s`, `3 min`, `2.5 h`; `-`
/// when the consumer has consumed everything.
fn age(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), datasync_local::stack::status::age_text)
}

/// The status document as tables.
pub fn render(doc: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "uptime {} s   deliveries/s {:.0}   processed {}   demo target received {}",
        text(&doc["uptime_seconds"]),
        doc["deliveries_per_second"].as_f64().unwrap_or(0.0),
        text(&doc["processed_messages"]),
        text(&doc["demo_target_received"]),
    );
    let mut rows = Vec::new();
    for s in doc["streams"].as_array().into_iter().flatten() {
        let consumers: Vec<&Value> = s["consumers"].as_array().into_iter().flatten().collect();
        if consumers.is_empty() {
            rows.push(vec![
                text(&s["name"]),
                text(&s["messages"]),
                text(&s["depth"]),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
        for (i, c) in consumers.iter().enumerate() {
            let who = c["connector"]
                .as_str()
                .map(|n| format!("connector {n}"))
                .or_else(|| c["group"].as_str().map(|g| format!("group {g}")))
                .unwrap_or_else(|| "?".into());
            let (name, messages, depth) = if i == 0 {
                (text(&s["name"]), text(&s["messages"]), text(&s["depth"]))
            } else {
                (String::new(), String::new(), String::new())
            };
            rows.push(vec![
                name,
                messages,
                depth,
                who,
                text(&c["lag"]),
                age(&c["oldest_age_seconds"]),
            ]);
        }
    }
    out.push_str("\nstreams\n");
    out.push_str(&table(
        &["stream", "messages", "depth", "consumer", "lag", "oldest"],
        &rows,
    ));
    let rows: Vec<Vec<String>> = doc["failures_by_class"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| vec![text(&f["class"]), text(&f["messages"])])
        .collect();
    out.push_str("\nfailures by class\n");
    out.push_str(&table(&["stream", "messages"], &rows));
    let g = &doc["gateway"];
    out.push_str("\ngateway\n");
    out.push_str(&table(
        &["requests", "accepted", "unauthorized", "rate limited"],
        &[vec![
            text(&g["requests"]),
            text(&g["accepted"]),
            text(&g["unauthorized"]),
            text(&g["rate_limited"]),
        ]],
    ));
    let rows: Vec<Vec<String>> = doc["functions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| vec![text(&f["name"]), text(&f["instances"]), text(&f["calls"])])
        .collect();
    out.push_str("\nfunctions\n");
    out.push_str(&table(&["function", "instances", "calls"], &rows));
    let n = &doc["notifications"];
    let _ = writeln!(out, "\nnotifications: {} in all", text(&n["total"]));
    for r in n["recent"].as_array().into_iter().flatten() {
        let m = &r["message"];
        let e = &m["last_error"];
        let mut line = format!("  {}  {}", text(&r["time"]), text(&r["title"]));
        if m.is_object() {
            let _ = write!(
                line,
                "  id {}  {} (status {}, {} attempts)",
                text(&m["id"]),
                text(&e["class"]),
                text(&e["status"]),
                text(&m["attempts"])
            );
        } else {
            let _ = write!(line, "  {} bytes", text(&r["bytes"]));
        }
        let _ = writeln!(out, "{line}");
    }
    let rows: Vec<Vec<String>> = doc["archived_objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| vec![text(&o["name"]), text(&o["size"])])
        .collect();
    out.push_str("\narchived objects\n");
    if rows.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&table(&["object", "bytes"], &rows));
    }
    let p = &doc["process"];
    if p.is_object() {
        let _ = writeln!(
            out,
            "\nstack process: {} OCI requests sent, RSS {} MB (peak {} MB)",
            text(&p["oci_requests_sent"]),
            text(&p["rss_mb"]),
            text(&p["peak_rss_mb"])
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn notifications_are_listed_by_what_they_are_about() {
        let doc = serde_json::json!({
            "notifications": {"total": 2, "recent": [
                {"time": "2026-11-28T06:24:54.873Z", "title": "datasync-dead-letter: message 0/1",
                 "bytes": 588, "message": {"id": "01a2", "attempts": 1,
                 "last_error": {"class": "clientError", "status": 400}}},
                {"time": "2026-11-28T06:25:00.000Z", "title": "other", "bytes": 12, "message": null}
            ]}
        });
        let out = render(&doc);
        assert!(out.contains("notifications: 2 in all"), "{out}");
        assert!(
            out.contains(
                "datasync-dead-letter: message 0/1  id 01a2  clientError (status 400, 1 attempts)"
            ),
            "{out}"
        );
        assert!(out.contains("other  12 bytes"), "{out}");
    }

    #[test]
    fn consumers_show_lag_and_the_age_of_their_oldest_unconsumed_message() {
        let doc = serde_json::json!({"streams": [{"name": "datasync-data", "messages": 9, "depth": 9,
        "consumers": [
            {"connector": "data-to-process", "lag": 3, "oldest_age_seconds": 4.2},
            {"connector": "b", "lag": 1, "oldest_age_seconds": 200.0},
            {"group": "g", "lag": 9, "oldest_age_seconds": 9000.0},
            {"connector": "idle", "lag": 0, "oldest_age_seconds": null}
        ]}]});
        let out = render(&doc);
        let line = |who: &str| {
            out.lines()
                .find(|l| l.contains(who))
                .unwrap_or_else(|| panic!("{who} missing:\n{out}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(line("oldest").ends_with("lag oldest"), "{out}");
        assert!(
            line("data-to-process").ends_with("data-to-process 3 4.2 s"),
            "{out}"
        );
        assert!(line("connector b").ends_with("b 1 3 min"), "{out}");
        assert!(line("group g").ends_with("g 9 2.5 h"), "{out}");
        assert!(line("connector idle").ends_with("idle 0 -"), "{out}");
    }
}
