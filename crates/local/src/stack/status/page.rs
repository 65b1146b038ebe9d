//! The status page for people (`page.html`, served as it is): health first, the charts of
//! the last 15 minutes, what is failing now, the dead letters, recent notifications, then the
//! streams and counters. It fetches `/status` every 2 s and redraws in place (no reload); its
//! CSS, script and charts (inline SVG) are all in the file, so it works offline. Every value is
//! put in the page as text (`textContent`), never as markup.

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

/// The page (`GET /`).
pub const PAGE: &str = include_str!("page.html");
