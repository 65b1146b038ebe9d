//! The emulator's MQL parser (any text, as SummarizeMetricsData's `query` brings it): it
//! answers an expression or an error saying where, never panics; a parsed dimension filter
//! tests any text without panicking.
#![no_main]

use datasync_emulator::monitoring::mql;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match mql::parse(text) {
        Ok(expr) => {
            let queries = std::iter::once(&expr.first).chain(expr.rest.iter().map(|(_, q)| q));
            for q in queries {
                for f in &q.filters {
                    let _ = f.matches(Some(text));
                    let _ = f.matches(None);
                }
            }
        }
        Err(e) => assert!(e.at <= text.len(), "{e:?} points past the text"),
    }
});
