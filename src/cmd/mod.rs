//! One module per subcommand.

pub mod oci;
