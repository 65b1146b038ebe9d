//! One module per subcommand.

pub mod bench;
pub mod demo_target;
pub mod emulator;
pub mod oci;
mod release_key;
pub mod retry;
pub mod routes;
pub mod send;
pub mod status;
pub mod trace;
pub mod tracing_init;
pub mod up;
