//! One module per subcommand.

pub mod demo_target;
pub mod emulator;
pub mod oci;
pub mod up;
