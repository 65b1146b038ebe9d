//! Fills an emulator's invoke log with trace lines and times timeline searches on it: the
//! store's growth per message and `datasync trace`'s latency on a large store
//! (docs/trace.md).
//!
//! `cargo run --release -p datasync-local --example trace_store -- [MESSAGES] [DIR]`
//! (default 1,000,000 messages of two lines each, accepted and delivered (the delivering call's
//! line), in a temporary directory; a thousand keys).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime};

use datasync_core::trace::search::Subject;
use datasync_core::trace::{TraceEvent, TraceKind};
use datasync_local::emulator::{Emulator, EmulatorOptions, LogLine, LogSpec};
use datasync_local::stack::trace_route::TraceSource;
use tokio_util::sync::CancellationToken;

const KEYS: u64 = 1000;
/// The lines of a message delivered at the first try.
const STORY: [TraceKind; 2] = [TraceKind::Accepted, TraceKind::Delivered];

fn line(kind: TraceKind, n: u64, t: SystemTime) -> LogLine {
    let mut e = TraceEvent::new(kind, &format!("01939a4c-0000-7000-8000-{n:012x}"))
        .key(Some(format!("key-{}", n % KEYS).as_bytes()));
    match kind {
        TraceKind::Accepted => {
            e.partition = Some("0".into());
            e.offset = Some(n as i64);
            e.caller = Some("billing-app".into());
        }
        _ => {
            e.target_host = Some("api.example.com".into());
            e.attempt = Some(1);
            e.status = Some(200);
            e.class = Some("ok".into());
            e.duration_ms = Some(12);
        }
    }
    let fields = serde_json::to_value(&e).unwrap();
    // The line as the JSON log format writes it: snake_case fields.
    let snake: serde_json::Map<String, serde_json::Value> = fields
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (to_snake(k), v.clone()))
        .collect();
    let message = serde_json::json!({
        "timestamp": "2026-12-05T13:51:08.123456Z",
        "level": "INFO",
        "fields": snake,
        "target": "datasync_trace",
    })
    .to_string();
    let function = if kind == TraceKind::Accepted {
        "populate"
    } else {
        "process"
    };
    LogLine::new(t, function, message)
}

fn to_snake(k: &str) -> String {
    let mut out = String::new();
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["emulator.db", "emulator.db-wal", "logs.db", "logs.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn time(
    source: &TraceSource,
    subject: Subject,
    since: Duration,
    runs: u32,
) -> (Duration, usize) {
    let mut took = Vec::new();
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        found = source
            .timeline(subject.clone(), since)
            .await
            .unwrap()
            .entries
            .len();
        took.push(t.elapsed());
    }
    took.sort();
    (took[took.len() / 2], found)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let tmp = tempfile_dir();
    let dir = args.next().map_or(tmp, std::path::PathBuf::from);
    let emulator = Emulator::open(&dir, EmulatorOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    {
        let (e, s) = (emulator.clone(), stop.clone());
        tokio::spawn(async move { e.serve(listener, s).await });
    }
    let ids = emulator
        .ensure_log(LogSpec {
            compartment: emulator.profile().compartment.clone(),
            group_name: "datasync-logs".into(),
            log_name: "datasync-functions-invoke".into(),
            application_name: "datasync".into(),
            application_id: "ocid1.fnapp.oc1.local.datasync".into(),
            retention_hours: 24 * 365,
        })
        .await
        .unwrap();
    let before = db_bytes(&dir);
    let start = SystemTime::now() - Duration::from_secs(3600);
    let filled = Instant::now();
    let mut batch = Vec::new();
    for n in 0..messages {
        let t = start + Duration::from_micros(n * 3);
        for kind in STORY {
            batch.push(line(kind, n, t));
        }
        if batch.len() >= 6000 {
            emulator
                .append_log_lines(&ids.log_id, std::mem::take(&mut batch))
                .await
                .unwrap();
        }
    }
    if !batch.is_empty() {
        emulator.append_log_lines(&ids.log_id, batch).await.unwrap();
    }
    let bytes: u64 = STORY
        .iter()
        .map(|kind| line(*kind, 42, start).message.len() as u64 + 1)
        .sum();
    let after = db_bytes(&dir);
    println!(
        "messages: {messages} ({} lines), filled in {:?}",
        messages * STORY.len() as u64,
        filled.elapsed()
    );
    println!(
        "log bytes per message ({} JSON lines with newline): {bytes}",
        STORY.len()
    );
    println!(
        "store growth: {} bytes per message, {:.1} MB per 100,000 messages",
        (after - before) / messages.max(1),
        (after - before) as f64 / messages.max(1) as f64 * 100_000.0 / 1e6
    );
    let source = TraceSource::local(&base, emulator.profile(), &ids).unwrap();
    let id = format!("01939a4c-0000-7000-8000-{:012x}", messages / 2);
    let (t, n) = time(
        &source,
        Subject::Id(id),
        Duration::from_secs(14 * 86_400),
        20,
    )
    .await;
    println!("datasync trace ID: median {t:?} ({n} entries)");
    let (t, n) = time(
        &source,
        Subject::Key("key-7".into()),
        Duration::from_secs(86_400),
        5,
    )
    .await;
    println!("datasync trace --key (1 of {KEYS} keys): median {t:?} ({n} entries)");
    stop.cancel();
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("trace-store-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
