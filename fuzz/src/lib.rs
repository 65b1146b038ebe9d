//! What the fuzz targets share: reading an input as a small HTTP-like request.
//!
//! An input is text: a first line (a request line, or anything a target wants), then
//! `name: value` header lines, then an empty line and the body (the rest, bytes). Lines that do
//! not make a valid header are skipped, so every input is some request, and the seeds stay
//! readable and editable by hand.

use http::{HeaderMap, HeaderName, HeaderValue};

/// An input read as a request.
#[derive(Debug)]
pub struct Input<'a> {
    /// The first line, without its end.
    pub first: &'a str,
    /// The headers, repeats kept, in order.
    pub headers: HeaderMap,
    /// Everything after the first empty line.
    pub body: &'a [u8],
}

/// Reads `data` as an [`Input`]. The head must be UTF-8 (`None` otherwise); the body may be
/// any bytes.
pub fn read_input(data: &[u8]) -> Option<Input<'_>> {
    let (head, body) = match find(data, b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &data[data.len()..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or_default();
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim_start().as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    Some(Input {
        first,
        headers,
        body,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
