//! The archive's object lines: the archive connector writes each batch as one object of JSON
//! lines, one OCI stream message (`key`, `value` in base64, stream, partition, offset) each.
//! Each line is read back as the retry function and the local pump read a stream message
//! (`Message`, `message_key`, `message_value`) and decoded with `Item::decode`; a line that
//! reads must also write back as one line that reads to the same message.
#![no_main]

use bytes::Bytes;
use datasync_core::deliver::Item;
use datasync_core::oci::models::Message;
use datasync_core::oci::streaming::{message_key, message_value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        let Ok(message) = serde_json::from_slice::<Message>(line) else {
            continue;
        };
        let written = serde_json::to_vec(&message).unwrap_or_default();
        assert!(!written.contains(&b'\n'), "an archive line spans lines");
        let again: Result<Message, _> = serde_json::from_slice(&written);
        assert!(again.is_ok(), "a written archive line does not read back");
        let key = message_key(&message).ok().flatten().map(Bytes::from);
        let value = match message_value(&message) {
            Ok(v) => Bytes::from(v),
            Err(_) => Bytes::from(message.value.clone().into_bytes()),
        };
        let item = Item::decode(
            &message.stream,
            &message.partition,
            message.offset,
            key,
            value,
        );
        let _ = item.decoded();
    }
});
