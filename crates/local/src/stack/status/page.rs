//! The status document as a self-contained HTML page (refreshes every 2 s, no external assets).

use std::fmt::Write as _;

use super::document::Status;

/// An `oldest_age_seconds` as the page and `datasync status` show it: `4.2 s`, `3 min`, `2.5 h`.
pub fn age_text(seconds: f64) -> String {
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A host's breaker state, with the time until its probes when it is open.
pub fn breaker_text(h: &datasync_core::deliver::HostHealth) -> String {
    match h.probes_in_ms {
        Some(ms) => format!(
            "{} (probes in {:.1} s)",
            h.breaker.as_str(),
            ms as f64 / 1000.0
        ),
        None => h.breaker.as_str().to_owned(),
    }
}

/// The per-route counts as a table (nothing without routes).
pub fn routes_table(doc: &Status) -> String {
    if doc.routes.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Routes</h2><table><tr><th>route</th><th>accepted</th><th>filtered</th><th>delivered</th><th>failed</th></tr>",
    );
    for r in &doc.routes {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.route),
            r.accepted,
            r.filtered,
            r.delivered,
            r.failed
        );
    }
    out.push_str("</table>");
    out
}

/// The status document as an HTML page: a table of the streams and their consumers, one of
/// the target hosts' breakers, then the whole document as JSON.
pub fn html(doc: &Status) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>datasync</title><style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}pre{background:#f4f4f4;padding:1em}</style>\
         </head><body><h1>datasync local stack</h1>",
    );
    let _ = write!(
        out,
        "<p>deliveries/s: {:.0} &middot; processed: {} &middot; uptime: {} s</p><h2>Streams</h2><table><tr><th>stream</th><th>depth</th><th>consumers (lag, age of the oldest unconsumed)</th></tr>",
        doc.deliveries_per_second, doc.processed_messages, doc.uptime_seconds
    );
    if !doc.storage.writing {
        let _ = write!(
            out,
            "<p style=\"color:#b00;font-weight:bold\">The emulator's database ({}) is failing writes: \
             requests that write answer 503. {} failed; last: {}</p>",
            esc(&doc.storage.database),
            doc.storage.failed_writes,
            esc(doc.storage.last_failure.as_deref().unwrap_or(""))
        );
    }
    for s in &doc.streams {
        let consumers: Vec<String> = s
            .consumers
            .iter()
            .map(|c| {
                let who = c.reader.name();
                match c.oldest_age_seconds {
                    Some(age) => format!("{who} ({}, {})", c.lag, age_text(age)),
                    None => format!("{who} ({})", c.lag),
                }
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            s.depth,
            esc(&consumers.join(", "))
        );
    }
    out.push_str("</table><h2>Target hosts</h2><table><tr><th>function</th><th>host</th><th>breaker</th><th>concurrency</th><th>paused</th></tr>");
    for f in &doc.functions {
        for h in &f.hosts {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td></tr>",
                esc(&f.name),
                esc(&h.host),
                breaker_text(h),
                h.concurrency,
                h.max_concurrency,
                h.paused_ms
                    .map_or_else(String::new, |ms| format!("{ms} ms"))
            );
        }
    }
    out.push_str("</table>");
    out.push_str(&routes_table(doc));
    out.push_str("<h2>Everything</h2><pre>");
    out.push_str(&esc(&serde_json::to_string_pretty(doc).unwrap_or_default()));
    out.push_str("</pre></body></html>");
    out
}
