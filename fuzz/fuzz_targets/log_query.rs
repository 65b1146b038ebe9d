//! The emulator's Logging query parser (any text, as `searchQuery` brings it): it answers a
//! query or an error naming what is unsupported, never panics; a parsed wildcard pattern
//! matches any text without panicking.
#![no_main]

use datasync_emulator::logging::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = query::parse(text) {
        for c in &q.conditions {
            let _ = c.pattern.matches(text);
            let _ = c.pattern.contained();
        }
    }
});
