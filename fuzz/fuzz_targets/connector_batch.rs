//! The connector batch as the process function decodes it: the body (any bytes) through
//! `process::parse_batch` (a JSON array of stream messages, each value base64 of an envelope,
//! read lazily), and each item's envelope read back as delivery reads it; then the same bytes
//! as one stream value through `Item::decode`, as retry and the local pump decode a message.
#![no_main]

use bytes::Bytes;
use datasync_core::deliver::Item;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    for item in process::parse_batch(&body) {
        let _ = item.decoded();
        let _ = item.origin();
    }
    let item = Item::decode("fuzz", "0", 7, Some(Bytes::from_static(b"key")), body);
    let _ = item.decoded();
    let _ = item.origin();
});
