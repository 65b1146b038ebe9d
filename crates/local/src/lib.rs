//! The local stack. Filled by the "OCI emulator" and "datasync up" issues; nothing here yet.
