//! The library every datasync part shares.
//!
//! - [`callback`]: delivery callbacks to source apps, signed as Standard Webhooks do.
//! - [`classify`]: the retry classifier, a pure function from an attempt to a decision.
//! - [`deliver`]: the delivery engine process and retry share (concurrency, per-key order,
//!   deadline, routing of failures, the dead-letter notification).
//! - [`function_config`]: the configuration keys the three functions read.
//! - [`metrics`]: what the functions observe, posted to OCI Monitoring once per invocation and
//!   handed to the `metrics` crate's facade (Prometheus locally).
//! - [`message`]: the sync request, the envelope on the streams, and the validation rules.
//! - [`oci`]: the OCI layer: request signing, auth providers, endpoints and service clients.
//! - [`pruned_map`]: a map by caller-chosen name that drops stale entries as new names arrive.
//! - [`route_counts`]: per-route counts in the process and retry answers.
//! - [`secret_cache`]: target tokens from Vault, cached with single-flight refresh.
//! - [`settings`]: the functions' configuration, read once and validated.
//! - [`target`]: the target caller (timeouts, no redirects, internal addresses refused).
//! - [`trace`]: a message's story as structured log lines (`datasync trace`).
#![warn(missing_docs)]

pub mod callback;
pub mod classify;
pub mod deliver;
pub mod function_config;
pub mod message;
pub mod metrics;
pub mod oci;
pub mod parked;
pub mod pruned_map;
pub mod route_counts;
pub mod routes;
pub mod sealed_cache;
pub mod secret_cache;
pub mod settings;
pub mod target;
pub mod trace;
