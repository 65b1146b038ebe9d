//! The library every datasync part shares.
//!
//! - [`classify`]: the retry classifier, a pure function from an attempt to a decision.
//! - [`function_config`]: the configuration keys the three functions read.
//! - [`message`]: the sync request, the envelope on the streams, and the validation rules.
//! - [`oci`]: the OCI layer: request signing, auth providers, endpoints and service clients.
//! - [`settings`]: the functions' configuration, read once and validated.
//! - [`target`]: the target caller (timeouts, no redirects, internal addresses refused).
#![warn(missing_docs)]

pub mod classify;
pub mod function_config;
pub mod message;
pub mod oci;
pub mod settings;
pub mod target;
