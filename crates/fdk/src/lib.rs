//! The Fn FDK. Filled by the FDK issue.
