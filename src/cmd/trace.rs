//! `datasync trace ID` and `datasync trace --key KEY [--since DUR]`: a message's timeline
//! (accepted, attempts, re-routes, parked and released, delivered or dead-lettered, replays,
//! callbacks) from the functions' invoke log, searched with Logging Search: the local stack's
//! (its emulator, `--data-dir`), or OCI Logging's with `--oci` (`docs/trace.md`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datasync_core::oci::auth::{AuthProvider, ConfigFileAuth};
use datasync_core::oci::client::OciClient;
use datasync_core::oci::endpoints::{Endpoints, Region};
use datasync_core::oci::logging::LogSearchClient;
use datasync_core::trace::search::{parse_since, Subject, MAX_WINDOW};
use datasync_core::trace::{Timeline, TraceEntry};
use datasync_local::stack::trace_route::{TraceSource, DEFAULT_KEY_SINCE};
use datasync_local::stack::StackInfo;

/// Shows what became of a message (by id) or of every message of a key.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Locally, reads the invoke log of the stack in --data-dir through the emulator's Logging Search.
With --oci, searches OCI Logging (SearchLogs) in the invoke log(s) given with --log-id (Terraform
output `functions_invoke_log_id`), signed with your own API key (needs `read log-content`).

Examples:
  datasync trace 0190f6b2-...
  datasync trace --key customer-42 --since 2h
  datasync trace --oci --log-id ocid1.log.oc1... --profile DEFAULT 0190f6b2-...")]
pub struct Args {
    /// The message id (the `id` populate answered).
    #[arg(required_unless_present = "key", conflicts_with = "key")]
    pub id: Option<String>,
    /// Every message of this stream key, in order.
    #[arg(long)]
    pub key: Option<String>,
    /// How far back to look: 30m, 2h, 7d (default: 14d for an id, 1d for a key).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// The data directory of a running (or stopped) `datasync up`.
    #[arg(long, value_name = "DIR", default_value = ".datasync")]
    pub data_dir: PathBuf,
    /// Print the timeline as JSON (the `GET /trace` shape).
    #[arg(long)]
    pub json: bool,
    /// Search OCI Logging instead of the local stack.
    #[arg(long)]
    pub oci: bool,
    /// With --oci: the invoke log OCID to search (repeatable).
    #[arg(long = "log-id", value_name = "OCID", requires = "oci")]
    pub log_ids: Vec<String>,
    /// With --oci: the OCI config file (default: $OCI_CONFIG_FILE, then ~/.oci/config).
    #[arg(long, requires = "oci")]
    pub config_file: Option<PathBuf>,
    /// With --oci: the profile in the config file (default: $OCI_CLI_PROFILE, then DEFAULT).
    #[arg(long, requires = "oci")]
    pub profile: Option<String>,
    /// With --oci: the region (default: the profile's).
    #[arg(long, requires = "oci")]
    pub region: Option<String>,
}

/// Runs `datasync trace`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (subject, since) = match (&args.id, &args.key) {
        (Some(id), _) => (Subject::Id(id.clone()), MAX_WINDOW),
        (None, Some(key)) => (Subject::Key(key.clone()), DEFAULT_KEY_SINCE),
        (None, None) => anyhow::bail!("give a message id or --key KEY"),
    };
    let since = match &args.since {
        Some(s) => parse_since(s).map_err(|e| anyhow::anyhow!("--since: {e}"))?,
        None => since,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let timeline = runtime.block_on(async {
        let source = if args.oci {
            oci_source(&args)?
        } else {
            local_source(&args)?
        };
        anyhow::Ok(source.timeline(subject.clone(), since).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&timeline)?);
    } else {
        print!("{}", render(&timeline, &subject));
    }
    Ok(if timeline.entries.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The local stack's invoke log, from `endpoints.json`.
fn local_source(args: &Args) -> anyhow::Result<TraceSource> {
    let info = StackInfo::read(&args.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "no local stack found in {} ({e}); start one with `datasync up` or pass --data-dir, or use --oci",
            args.data_dir.display()
        )
    })?;
    let log = info.trace_log.as_ref().ok_or_else(|| {
        anyhow::anyhow!("this stack keeps no invoke log; restart it with this datasync version")
    })?;
    let auth = ConfigFileAuth::from_config(
        Some(info.oci_config_file.as_path()),
        Some(&info.oci_profile),
        |_| None,
    )?;
    let endpoints = Endpoints::all_at(&info.emulator)?;
    let client = LogSearchClient::new(OciClient::new(Arc::new(auth))?, &endpoints)?;
    Ok(TraceSource::new(client, vec![log.log_id.clone()]).with_stream_names(&info.streams))
}

/// OCI Logging, signed with the operator's own API key.
fn oci_source(args: &Args) -> anyhow::Result<TraceSource> {
    if args.log_ids.is_empty() {
        anyhow::bail!(
            "--oci needs --log-id OCID: the functions' invoke log (`terraform output functions_invoke_log_id`)"
        );
    }
    let auth =
        ConfigFileAuth::from_config(args.config_file.as_deref(), args.profile.as_deref(), |k| {
            std::env::var(k).ok()
        })?;
    let region = args
        .region
        .clone()
        .or_else(|| auth.region())
        .context("no region: pass --region or set `region` in the profile")?;
    let endpoints = Endpoints::for_region(Region::new(&region));
    let client = LogSearchClient::new(OciClient::new(Arc::new(auth))?, &endpoints)?;
    Ok(TraceSource::new(client, args.log_ids.clone()))
}

/// The timeline as lines for people: time, event, and what applies.
fn render(timeline: &Timeline, subject: &Subject) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if timeline.entries.is_empty() {
        let what = match subject {
            Subject::Id(id) => format!("message {id}"),
            Subject::Key(key) => format!("key {key}"),
        };
        let _ = writeln!(out, "nothing found for {what} (try a longer --since)");
        return out;
    }
    let by_key = matches!(subject, Subject::Key(_));
    for e in &timeline.entries {
        let _ = writeln!(out, "{}", line(e, by_key));
    }
    out
}

fn line(entry: &TraceEntry, with_id: bool) -> String {
    let e = &entry.event;
    let mut parts = vec![entry.time.clone(), format!("{:<13}", e.event.as_str())];
    if with_id {
        parts.push(e.id.clone());
    }
    let mut push = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            parts.push(format!("{name}={v}"));
        }
    };
    push("attempt", e.attempt.map(|a| a.to_string()));
    push("host", e.target_host.clone());
    push("route", e.route.clone());
    push("status", e.status.map(|s| s.to_string()));
    push("class", e.class.clone());
    push("took", e.duration_ms.map(|d| format!("{d}ms")));
    push("error", e.error.clone());
    push("stream", e.stream.clone());
    push("next", e.not_before.clone());
    push("partition", e.partition.clone());
    push("offset", e.offset.map(|o| o.to_string()));
    push("caller", e.caller.clone());
    push("detail", e.detail.clone());
    push("body", e.body.as_ref().map(|b| format!("{b:?}")));
    parts.join("  ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use datasync_core::trace::{TraceEvent, TraceKind};

    use super::*;

    #[test]
    fn lines_show_what_applies() {
        let mut e = TraceEvent::new(TraceKind::Attempt, "m1");
        e.status = Some(503);
        e.duration_ms = Some(4);
        let entry = TraceEntry {
            time: "t".into(),
            event: e,
        };
        assert_eq!(
            line(&entry, false),
            "t  attempt        status=503  took=4ms"
        );
        assert!(line(&entry, true).contains("m1"));
        let empty = render(&Timeline::default(), &Subject::Key("k".into()));
        assert!(empty.contains("key k"));
    }
}
