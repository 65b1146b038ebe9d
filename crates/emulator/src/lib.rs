//! An emulator of the OCI APIs datasync uses, on an embedded durable store.
//!
//! One listen address serves every service, routed by the first path segment (the API's
//! version, or `n` for Object Storage): `/20180418/...` Streaming (data and
//! control plane), `/20190301/secretbundles...` Secrets, `/20180608/secrets...` Vault,
//! `/20180608/encrypt` and `/decrypt` Key Management crypto,
//! `/20181201/topics...` Notifications, `/20180401/metrics...` Monitoring (PostMetricData,
//! ListMetrics, SummarizeMetricsData), `/n/...` Object Storage. Every route requires an OCI
//! request signature (there is no switch to turn verification off); on first start the
//! emulator writes a development key and an OCI config file with a `LOCAL` profile into the
//! data directory, so the official CLI and SDKs work against it unchanged.
//!
//! # Modules
//!
//! One module per OCI service, each with a `route` function that the router mounts under its
//! API's path: `streaming`, `secrets` (Secrets and Vault), `kms` (Encrypt, Decrypt),
//! `notifications`, `monitoring`, `objectstorage`.
//! Shared by all of them: `auth` (keys, the `LOCAL` profile, resource principal tokens and
//! request signature verification), `http` (listeners, body limits, request ids), `router`,
//! `request` and `response` (what a service reads from a request and answers), `store` (the
//! SQLite store with group commit), `crypto` (the data key), `clock` (the wire's time
//! formats), `error`. [`client`] is a signed HTTP client for the emulator.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use datasync_emulator::{Emulator, EmulatorOptions};
//! use tokio_util::sync::CancellationToken;
//!
//! let emulator = Emulator::open("/tmp/datasync-emulator".as_ref(), EmulatorOptions::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("config: {}", emulator.profile().config_file.display());
//! let shutdown = CancellationToken::new();
//! emulator.serve(listener, shutdown.clone()).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod auth;
pub mod client;
mod clock;
mod crypto;
mod emulator;
mod error;
pub mod http;
mod kms;
pub mod logging;
pub mod monitoring;
mod notifications;
mod objectstorage;
mod options;
mod request;
mod response;
mod router;
mod secret_versions;
mod secrets;
mod store;
mod streaming;

pub use auth::{
    KeyRegistry, LocalProfile, ResourcePrincipal, LOCAL_COMPARTMENT, LOCAL_PROFILE, LOCAL_REGION,
    LOCAL_TENANCY, LOCAL_USER,
};
pub use emulator::{Appended, Emulator};
pub use error::{ApiError, EmulatorError, KeyError};
pub use logging::{LogIds, LogLine, LogSpec, TraceIds};
pub use notifications::PublishedNotification;
pub use options::EmulatorOptions;
pub use store::StorageHealth;
pub use streaming::{
    GroupPositions, StoredMessage, StreamStats, MAX_GET_LIMIT, MAX_MESSAGE_BYTES, MAX_PUT_BYTES,
};

/// The Object Storage namespace the emulator serves.
pub const NAMESPACE: &str = "local";
/// The database file's name in the data directory.
pub const DATABASE_FILE: &str = "emulator.db";
/// The logs database's file name in the data directory (Logging's records, kept apart from
/// the streams so that log writes never wait for or hold up their commits).
pub const LOGS_DATABASE_FILE: &str = "logs.db";
