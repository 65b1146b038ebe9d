//! OCI request signing.
