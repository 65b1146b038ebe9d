//! The OCI layer: request signing, auth providers, endpoints and typed service clients.

pub mod auth;
pub mod client;
pub mod endpoints;
pub mod key;
pub mod models;
pub mod signer;
