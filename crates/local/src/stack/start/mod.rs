//! The stages of [`Stack::start`](super::Stack::start), in the order they run: each starts one
//! part and hands back what later stages and [`Stack`](super::Stack) need.
//!
//! 1. [`emulator`]: the OCI emulator (TCP and a Unix socket).
//! 2. [`resources`]: streams, alerts topic, archive bucket, the routes object ([`routes`]).
//!    Then [`trace`]: the functions' invoke log and the writer of their trace lines.
//!    Then [`callbacks`]: the callback signing secret, in the file and in Vault.
//!    Then [`state`]: the connectors' checkpoints and the consumer groups' positions belong to
//!    those streams (or are reset when asked).
//! 3. [`demo_target`]: the demo target, when asked for.
//! 4. [`functions`]: the three functions, configured as Terraform configures them.
//! 5. [`pump`]: the connectors and the retry schedule.
//! 6. [`gateway`]: the API Gateway front and the status page.

pub(crate) mod callbacks;
pub(crate) mod config_map;
pub(crate) mod demo_target;
pub(crate) mod emulator;
pub(crate) mod functions;
pub(crate) mod gateway;
pub(crate) mod pump;
pub(crate) mod resources;
pub(crate) mod routes;
pub(crate) mod state;
pub(crate) mod trace;
