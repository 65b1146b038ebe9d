//! Parked keys: per-key order across batches, invocations and restarts.
//!
//! When a keyed message fails with a retryable class, its key is *parked*: every later
//! message of that key, in any batch, by process or retry, is not attempted and is written
//! behind it to the same error stream, until the blocker and the messages behind it are
//! delivered or dead-lettered. The set of parked keys is shared by every instance and
//! survives restarts, so it lives in Object Storage (the same code on OCI and the emulator):
//! one JSON object, read once per batch and changed with conditional writes. `docs/ordering.md`
//! gives the states, the transitions and the cost.
//!
//! - `set`: the stored form ([`ParkedSet`], [`Entry`]) and the [`Change`]s made to it.
//! - `store`: reading and writing it ([`ParkedStore`]).

mod set;
mod store;

pub use set::{Change, Entry, ParkedSet, Parking};
pub use store::{
    epoch_ms, parked_reads, parked_writes, ParkedError, ParkedLocation, ParkedStore, Snapshot,
};

/// The key of a message as the parked set names it: base64 of its bytes.
pub fn key_name(key: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(key)
}
