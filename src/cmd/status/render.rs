//! The status document as the tables `datasync status` prints.

use std::fmt::Write as _;

use datasync_local::stack::status::{age_text, breaker_text, NotificationSummary, Reader, Status};

/// Formats rows as left-aligned columns under a header.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
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

/// A value that may be unknown: `-` when it is.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A figure in MB as the JSON writes it (`40.0`, `40.1`); `-` when unknown.
fn megabytes(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:?}"))
}

/// The status document as tables.
pub fn render(doc: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "uptime {} s   deliveries/s {:.0}   processed {}   demo target received {}",
        doc.uptime_seconds,
        doc.deliveries_per_second,
        doc.processed_messages,
        doc.demo_target_received,
    );
    if let Some(line) = storage_line(doc) {
        out.push_str(&line);
    }
    out.push_str("\nstreams\n");
    out.push_str(&table(
        &["stream", "messages", "depth", "consumer", "lag", "oldest"],
        &stream_rows(doc),
    ));
    let rows: Vec<Vec<String>> = doc
        .failures_by_class
        .iter()
        .map(|f| vec![f.class.clone(), f.messages.to_string()])
        .collect();
    out.push_str("\nfailures by class\n");
    out.push_str(&table(&["stream", "messages"], &rows));
    let g = &doc.gateway;
    out.push_str("\ngateway\n");
    out.push_str(&table(
        &["requests", "accepted", "unauthorized", "rate limited"],
        &[vec![
            g.requests.to_string(),
            g.accepted.to_string(),
            g.unauthorized.to_string(),
            g.rate_limited.to_string(),
        ]],
    ));
    let rows: Vec<Vec<String>> = doc
        .functions
        .iter()
        .map(|f| vec![f.name.clone(), f.instances.to_string(), f.calls.to_string()])
        .collect();
    out.push_str("\nfunctions\n");
    out.push_str(&table(&["function", "instances", "calls"], &rows));
    let rows: Vec<Vec<String>> = doc
        .functions
        .iter()
        .flat_map(|f| f.hosts.iter().map(move |h| (f, h)))
        .map(|(f, h)| {
            vec![
                f.name.clone(),
                h.host.clone(),
                breaker_text(h),
                format!("{} of {}", h.concurrency, h.max_concurrency),
                h.paused_ms
                    .map_or_else(String::new, |ms| format!("{ms} ms")),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str("\ntarget hosts\n");
        out.push_str(&table(
            &["function", "host", "breaker", "concurrency", "paused"],
            &rows,
        ));
    }
    if !doc.routes.is_empty() {
        let rows: Vec<Vec<String>> = doc
            .routes
            .iter()
            .map(|r| {
                vec![
                    r.route.clone(),
                    r.accepted.to_string(),
                    r.filtered.to_string(),
                    r.delivered.to_string(),
                    r.failed.to_string(),
                ]
            })
            .collect();
        out.push_str("\nroutes\n");
        out.push_str(&table(
            &["route", "accepted", "filtered", "delivered", "failed"],
            &rows,
        ));
    }
    let n = &doc.notifications;
    let _ = writeln!(out, "\nnotifications: {} in all", n.total);
    let _ = writeln!(
        out,
        "  dead-letter alerts: {} published, {} publish failures, {} held back by the rate limit",
        n.alerts_published, n.alert_publish_failures, n.alerts_held_back
    );
    for r in &n.recent {
        let _ = writeln!(out, "{}", notification_line(r));
    }
    let rows: Vec<Vec<String>> = doc
        .archived_objects
        .iter()
        .flatten()
        .map(|o| vec![o.name.clone(), or_dash(o.size)])
        .collect();
    out.push_str("\narchived objects\n");
    if rows.is_empty() {
        out.push_str("  (none)\n");
    } else {
        out.push_str(&table(&["object", "bytes"], &rows));
    }
    let p = &doc.process;
    let _ = writeln!(
        out,
        "\nstack process: {} OCI requests sent, RSS {} MB (peak {} MB)",
        p.oci_requests_sent,
        megabytes(p.rss_mb),
        megabytes(p.peak_rss_mb)
    );
    out
}

/// What to say about the emulator's database: nothing while every write succeeded.
fn storage_line(doc: &Status) -> Option<String> {
    let s = &doc.storage;
    if s.failed_writes == 0 && s.writing {
        return None;
    }
    let last = format!(
        "last {} ago: {}",
        s.last_failure_seconds_ago
            .map_or_else(|| "-".to_owned(), age_text),
        or_dash(s.last_failure.as_ref())
    );
    Some(if s.writing {
        format!(
            "storage: writing again; {} writes failed ({last})\n",
            s.failed_writes
        )
    } else {
        format!(
            "STORAGE FAILING: the emulator's database {} refuses writes; requests that write \
             answer 503. {} writes failed ({last})\n",
            s.database, s.failed_writes
        )
    })
}

/// One row per consumer (the stream's name, messages and depth on its first), or one row for
/// a stream nobody reads.
fn stream_rows(doc: &Status) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for s in &doc.streams {
        let (messages, depth) = (s.messages.to_string(), s.depth.to_string());
        if s.consumers.is_empty() {
            rows.push(vec![
                s.name.clone(),
                messages,
                depth,
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        }
        for (i, c) in s.consumers.iter().enumerate() {
            let who = match &c.reader {
                Reader::Connector { connector, .. } => format!("connector {connector}"),
                Reader::Group { group } => format!("group {group}"),
            };
            let (name, messages, depth) = if i == 0 {
                (s.name.clone(), messages.clone(), depth.clone())
            } else {
                (String::new(), String::new(), String::new())
            };
            rows.push(vec![
                name,
                messages,
                depth,
                who,
                c.lag.to_string(),
                c.oldest_age_seconds
                    .map_or_else(|| "-".to_owned(), age_text),
            ]);
        }
    }
    rows
}

/// A notification: when, its title, and what it is about (or its size).
fn notification_line(r: &NotificationSummary) -> String {
    let mut line = format!("  {}  {}", r.time, or_dash(r.title.as_ref()));
    match &r.message {
        Some(m) => {
            let e = m.last_error.as_ref();
            let _ = write!(
                line,
                "  id {}  {} (status {}, {} attempts)",
                m.id,
                or_dash(e.map(|e| e.class.as_str())),
                or_dash(e.and_then(|e| e.status)),
                m.attempts
            );
        }
        None if !r.dead_letters.is_empty() => {
            let _ = write!(line, "  {} bytes:", r.bytes);
            for m in r.dead_letters.iter().take(3) {
                let e = m.last_error.as_ref();
                let _ = write!(
                    line,
                    "  id {} {} (status {})",
                    m.id,
                    or_dash(e.map(|e| e.class.as_str())),
                    or_dash(e.and_then(|e| e.status)),
                );
            }
            if r.dead_letters.len() > 3 {
                let _ = write!(line, "  and {} more", r.dead_letters.len() - 3);
            }
        }
        None => {
            let _ = write!(line, "  {} bytes", r.bytes);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use datasync_local::stack::status::{Consumer, Notifications, StreamStatus};

    #[test]
    fn notifications_are_listed_by_what_they_are_about() {
        let recent: Vec<NotificationSummary> = serde_json::from_value(serde_json::json!([
            {"time": "2026-11-28T06:24:54.873Z", "title": "datasync-dead-letter: message 0/1",
             "bytes": 588, "message": {"id": "01a2", "attempts": 1,
             "last_error": {"class": "clientError", "status": 400}}},
            {"time": "2026-11-28T06:25:00.000Z", "title": "other", "bytes": 12, "message": null}
        ]))
        .unwrap();
        let doc = Status {
            notifications: Notifications {
                total: 2,
                recent,
                ..Notifications::default()
            },
            ..Status::default()
        };
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
    fn routes_are_a_table_of_their_counts_and_absent_without_routes() {
        let mut doc = Status::default();
        assert!(!render(&doc).contains("\nroutes\n"), "{}", render(&doc));
        doc.routes = serde_json::from_value(serde_json::json!([
            {"route": "orders", "accepted": 3, "filtered": 1, "delivered": 2, "failed": 1}
        ]))
        .unwrap();
        let out = render(&doc);
        let row = out
            .lines()
            .find(|l| l.starts_with("orders"))
            .unwrap_or_else(|| panic!("no orders row:\n{out}"));
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["orders", "3", "1", "2", "1"]
        );
        assert!(
            out.contains("route   accepted  filtered  delivered  failed"),
            "{out}"
        );
    }

    #[test]
    fn a_failing_database_is_said_first_and_a_healthy_one_not_at_all() {
        let mut doc = Status::default();
        assert!(!render(&doc).contains("storage"), "{}", render(&doc));
        doc.storage = serde_json::from_value(serde_json::json!({
            "database": "/d/emulator.db", "writing": false, "failed_writes": 3,
            "last_failure": "the emulator's database failed: disk full",
            "last_failure_seconds_ago": 2.0
        }))
        .unwrap();
        let out = render(&doc);
        let second = out.lines().nth(1).unwrap_or_default();
        assert!(
            second.starts_with("STORAGE FAILING: the emulator's database /d/emulator.db"),
            "{out}"
        );
        assert!(
            second.contains(
                "3 writes failed (last 2.0 s ago: the emulator's database failed: disk full)"
            ),
            "{out}"
        );
        doc.storage.writing = true;
        assert!(render(&doc).contains("storage: writing again; 3 writes failed"));
    }

    #[test]
    fn consumers_show_lag_and_the_age_of_their_oldest_unconsumed_message() {
        let consumers: Vec<Consumer> = serde_json::from_value(serde_json::json!([
            {"connector": "data-to-process", "lag": 3, "oldest_age_seconds": 4.2,
             "delivered": 6, "failed_attempts": 0},
            {"connector": "b", "lag": 1, "oldest_age_seconds": 200.0,
             "delivered": 0, "failed_attempts": 0},
            {"group": "g", "lag": 9, "oldest_age_seconds": 9000.0},
            {"connector": "idle", "lag": 0, "oldest_age_seconds": null,
             "delivered": 0, "failed_attempts": 0}
        ]))
        .unwrap();
        let doc = Status {
            streams: vec![StreamStatus {
                name: "datasync-data".into(),
                messages: 9,
                depth: 9,
                consumers,
                ..StreamStatus::default()
            }],
            ..Status::default()
        };
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
