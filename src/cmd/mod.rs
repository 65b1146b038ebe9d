//! One module per subcommand.

pub mod emulator;
pub mod oci;
pub mod up;
