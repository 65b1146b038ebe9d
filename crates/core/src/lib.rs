//! The library every datasync part shares.
//!
//! - [`function_config`]: the configuration keys the three functions read.
//! - [`oci`]: the OCI layer: request signing, auth providers, endpoints and service clients.
#![warn(missing_docs)]

pub mod function_config;
pub mod oci;
