//! The retry function's request: the body (any bytes) through `retry::request::parse` and,
//! when it reads, `check` with the configured error streams, as `Retry::handle` does before
//! anything is read from a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONFIGURED: [&str; 3] = [
    "ocid1.stream.oc1..retry-503",
    "ocid1.stream.oc1..retry-500",
    "ocid1.stream.oc1..dead-letter",
];

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = retry::request::parse(data) {
        let _ = request.check(|stream| CONFIGURED.contains(&stream));
    }
});
