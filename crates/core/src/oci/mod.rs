//! The OCI layer: request signing, auth providers, endpoints and typed service clients.

pub mod key;
pub mod signer;
