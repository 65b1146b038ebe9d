//! [`EmulatorOptions`]: the emulator's settings.

use std::time::Duration;

/// Settings of an [`Emulator`](crate::Emulator); the defaults suit both `datasync up` and tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EmulatorOptions {
    /// How often the retention sweeper runs while serving (default 60 s).
    pub retention_sweep: Duration,
    /// The most decoded key+value bytes one GetMessages answer carries (default 4 MiB; at
    /// least one message is always returned). With [`EmulatorOptions::concurrent_reads`] it
    /// bounds the memory reads use, whatever the stream size.
    pub get_messages_max_bytes: usize,
    /// GetMessages calls served at once (default 2); others wait their turn.
    pub concurrent_reads: usize,
    /// The largest object PutObject accepts (default 16 MiB; the emulator keeps objects in
    /// the database and reads them whole, and datasync stores small dead-letter archives).
    pub max_object_bytes: usize,
    /// PublishMessage calls one topic accepts per minute (default 60, OCI's per-topic limit);
    /// more answer 429 `TooManyRequests`. Tests lower it.
    pub notifications_per_minute: u32,
    /// How long a secret shows `CREATING` after CreateSecret and `UPDATING` after a new version
    /// before it is `ACTIVE` again, as OCI's are for a moment; meanwhile UpdateSecret and
    /// ScheduleSecretDeletion answer 409 `IncorrectState` (default 0: at once ACTIVE).
    pub secret_transition: Duration,
    /// How long Monitoring keeps datapoints (default 24 hours; OCI keeps 90 days): the
    /// retention sweeper deletes older ones.
    pub metrics_retention: Duration,
    /// Whether PostMetricData starts out answering 503, as in a Monitoring outage (default
    /// false; [`Emulator::set_monitoring_outage`](crate::Emulator::set_monitoring_outage)
    /// turns it on and off while serving).
    pub monitoring_outage: bool,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        Self {
            retention_sweep: Duration::from_secs(60),
            get_messages_max_bytes: 4 * 1024 * 1024,
            concurrent_reads: 2,
            max_object_bytes: 16 * 1024 * 1024,
            notifications_per_minute: 60,
            secret_transition: Duration::ZERO,
            metrics_retention: Duration::from_secs(24 * 3600),
            monitoring_outage: false,
        }
    }
}
