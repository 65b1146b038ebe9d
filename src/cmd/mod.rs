//! One module per subcommand.

pub mod bench;
pub mod demo_target;
pub mod emulator;
pub mod oci;
pub mod up;
