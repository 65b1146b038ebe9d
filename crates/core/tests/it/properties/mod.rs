//! Property tests (`proptest`): the classifier, payload compaction and the signer, each checked
//! on generated inputs against a rule stated independently of the code (docs/testing.md).

mod classify;
mod compact;
mod signer;
