//! The [`Emulator`] handle and the state every service shares ([`Inner`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::auth::{self, LocalProfile, ResourcePrincipal};
use crate::error::{ApiError, EmulatorError};
use crate::notifications::{self, PublishedNotification};
use crate::options::EmulatorOptions;
use crate::streaming::{self, StreamStats};
use crate::{crypto, store, DATABASE_FILE, LOGS_DATABASE_FILE};

/// What every request handler shares: the store, the keys, the caches and the options.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) store: Arc<store::Store>,
    /// Logging's records, in a database of their own (see [`store`]).
    pub(crate) logs: Arc<store::Store>,
    pub(crate) key: crypto::DataKey,
    pub(crate) keys: auth::KeyRegistry,
    pub(crate) profile: LocalProfile,
    pub(crate) base_url: RwLock<String>,
    pub(crate) streams: RwLock<HashMap<String, Arc<streaming::StreamRow>>>,
    pub(crate) reads: Arc<tokio::sync::Semaphore>,
    pub(crate) verified: auth::verify::VerifiedMemo,
    /// Per stream OCID, what was appended since start, for in-process readers
    /// ([`Emulator::appended`]); only streams someone watches have an entry.
    pub(crate) appended: RwLock<HashMap<String, tokio::sync::watch::Sender<Appended>>>,
    pub(crate) options: EmulatorOptions,
    /// PublishMessage calls per topic in the last minute.
    pub(crate) topic_rates: crate::notifications::TopicRates,
    /// Whether PostMetricData answers 503 ([`Emulator::set_monitoring_outage`]).
    pub(crate) monitoring_outage: std::sync::atomic::AtomicBool,
    /// GetObject and HeadObject calls per object since start ([`Emulator::object_reads`]).
    pub(crate) object_reads: crate::objectstorage::ReadCounts,
}

impl Inner {
    /// The base URL the emulator serves on (empty before it serves).
    pub(crate) fn base_url(&self) -> String {
        self.base_url.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// Tells the watchers of `stream` that `messages` more messages of `bytes` value bytes are
    /// durable in it.
    pub(crate) fn note_appended(&self, stream: &str, messages: usize, bytes: usize) {
        if let Ok(map) = self.appended.read() {
            if let Some(tx) = map.get(stream) {
                tx.send_modify(|a| {
                    a.messages += messages as u64;
                    a.bytes += bytes as u64;
                });
            }
        }
    }
}

/// Totals of what PutMessages appended to one stream (see [`Emulator::appended`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Appended {
    /// Messages.
    pub messages: u64,
    /// Their decoded value bytes.
    pub bytes: u64,
}

/// The emulator: open it on a data directory, then [`Emulator::serve`] it. Cheap to clone.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Opens the emulator on `data_dir` (created when absent): the database, the data key, the
    /// token signing key, and the `LOCAL` profile (key pair and config file, made on first
    /// start and registered as an API key).
    ///
    /// # Errors
    /// [`EmulatorError`] when the directory, a key or the database cannot be read or created.
    pub fn open(data_dir: &Path, options: EmulatorOptions) -> Result<Self, EmulatorError> {
        std::fs::create_dir_all(data_dir).map_err(EmulatorError::io("creating", data_dir))?;
        let dir =
            std::fs::canonicalize(data_dir).map_err(EmulatorError::io("resolving", data_dir))?;
        let key = crypto::DataKey::load_or_create(&dir)?;
        let keys = auth::KeyRegistry::open(&dir)?;
        let (profile, public) = auth::ensure_local_profile(&dir)?;
        let logs_path = dir.join(LOGS_DATABASE_FILE);
        let logs = Arc::new(open_logs(&logs_path)?);
        let store = Arc::new(store::Store::open_main(
            &dir.join(DATABASE_FILE),
            &logs_path,
        )?);
        let pem = auth::public_pem(&public)?;
        let key_id = profile.key_id();
        {
            let (key_id, pem) = (key_id.clone(), pem.clone());
            store.read_blocking(|_| Ok(()))?;
            block_on_write(&store, move |conn| {
                conn.execute(
                    "INSERT INTO api_keys(key_id, public_pem) VALUES (?1, ?2)
                     ON CONFLICT(key_id) DO UPDATE SET public_pem=excluded.public_pem",
                    [key_id, pem],
                )?;
                Ok(())
            })?;
        }
        let registered: Vec<(String, String)> = store.read_blocking(|conn| {
            Ok(conn
                .prepare("SELECT key_id, public_pem FROM api_keys")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?)
        })?;
        for (id, pem) in registered {
            keys.insert(id, auth::parse_public_pem(&pem)?);
        }
        let reads = Arc::new(tokio::sync::Semaphore::new(options.concurrent_reads.max(1)));
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                store,
                logs,
                key,
                keys,
                profile,
                base_url: RwLock::new(String::new()),
                streams: RwLock::new(HashMap::new()),
                reads,
                verified: auth::verify::VerifiedMemo::default(),
                appended: RwLock::new(HashMap::new()),
                topic_rates: Default::default(),
                monitoring_outage: std::sync::atomic::AtomicBool::new(options.monitoring_outage),
                object_reads: Default::default(),
                options,
            }),
        })
    }

    /// Turns the Monitoring outage on or off: while on, PostMetricData answers 503
    /// `ServiceUnavailable` (the other Monitoring operations still answer).
    pub fn set_monitoring_outage(&self, on: bool) {
        self.inner
            .monitoring_outage
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The `LOCAL` profile: config file, key file, OCIDs.
    pub fn profile(&self) -> &LocalProfile {
        &self.inner.profile
    }

    /// The base URL the emulator serves on (empty before [`Emulator::serve`]); also every
    /// stream's `messagesEndpoint`.
    pub fn base_url(&self) -> String {
        self.inner.base_url()
    }

    /// Serves every API on `listener` until `shutdown` is cancelled, then finishes in-flight
    /// requests and lets the writer commit what is queued. Also runs the retention sweeper.
    ///
    /// # Errors
    /// [`EmulatorError::Serve`] when the listener fails.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), EmulatorError> {
        let addr = listener.local_addr().map_err(EmulatorError::Serve)?;
        if let Ok(mut url) = self.inner.base_url.write() {
            *url = format!("http://{addr}");
        }
        let sweeper = {
            let inner = Arc::clone(&self.inner);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(inner.options.retention_sweep);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            if let Err(err) = streaming::trim(&inner, SystemTime::now()).await {
                                tracing::warn!(%err, "emulator: retention sweep failed");
                            }
                            let now = crate::clock::ms_since_epoch(SystemTime::now());
                            if let Err(err) = crate::monitoring::prune(&inner, now).await {
                                tracing::warn!(%err, "emulator: metrics retention sweep failed");
                            }
                            if let Err(err) = crate::logging::trim(&inner, SystemTime::now()).await {
                                tracing::warn!(%err, "emulator: log retention sweep failed");
                            }
                        }
                    }
                }
            })
        };
        let result = crate::http::serve(Arc::clone(&self.inner), listener, shutdown).await;
        sweeper.abort();
        result.map_err(EmulatorError::Serve)
    }

    /// Serves every API on the Unix socket `listener` too, until `shutdown`, for clients on
    /// this machine that connect there with the same URLs ([`Emulator::base_url`]), such as
    /// the local stack's functions: a Unix socket costs the kernel less than loopback TCP.
    /// Call beside [`Emulator::serve`], which sets the base URL and runs the sweeper.
    ///
    /// # Errors
    /// [`EmulatorError::Serve`] when the listener fails.
    pub async fn serve_unix(
        &self,
        listener: tokio::net::UnixListener,
        shutdown: CancellationToken,
    ) -> Result<(), EmulatorError> {
        crate::http::serve_unix(Arc::clone(&self.inner), listener, shutdown)
            .await
            .map_err(EmulatorError::Serve)
    }

    /// Writes a resource principal for the function `name` into `dir`: an RPST (a JWT signed
    /// RS256 by the emulator's key, with `exp`, `res_tenant`, `res_type=fnfunc`, `res_id` and
    /// the principal's public key as `jwk`) and a fresh private key (PKCS#8, mode 0600).
    /// Requests signed with keyId `ST$<token>` and that key verify until the token expires
    /// (then 401). Calling it again rewrites both files, as OCI's refresh does.
    ///
    /// # Errors
    /// [`EmulatorError`] when the files cannot be written.
    pub fn mint_resource_principal(
        &self,
        name: &str,
        dir: &Path,
        ttl: Duration,
    ) -> Result<ResourcePrincipal, EmulatorError> {
        std::fs::create_dir_all(dir).map_err(EmulatorError::io("creating", dir))?;
        let key = auth::generate_key()?;
        let resource_id = format!("ocid1.fnfunc.oc1.local.{name}");
        let now = SystemTime::now();
        let token = self
            .inner
            .keys
            .mint_token(&resource_id, &key.to_public_key(), now, ttl);
        let private_pem_file = dir.join("private.pem");
        let rpst_file = dir.join("rpst");
        crypto::write_private(&private_pem_file, auth::private_pem(&key)?.as_bytes())?;
        crypto::write_private(&rpst_file, token.as_bytes())?;
        Ok(ResourcePrincipal {
            rpst_file: std::fs::canonicalize(&rpst_file)
                .map_err(EmulatorError::io("resolving", &rpst_file))?,
            private_pem_file: std::fs::canonicalize(&private_pem_file)
                .map_err(EmulatorError::io("resolving", &private_pem_file))?,
            resource_id,
            expires_at: now + ttl,
        })
    }

    /// Registers another API key (keyId `<tenancy>/<user>/<fingerprint>`), durably.
    ///
    /// # Errors
    /// [`EmulatorError`] when it cannot be stored.
    pub async fn register_api_key(
        &self,
        key_id: &str,
        public: &rsa::RsaPublicKey,
    ) -> Result<(), EmulatorError> {
        let pem = auth::public_pem(public)?;
        let id = key_id.to_owned();
        self.inner
            .store
            .write(move |conn, _| {
                conn.execute(
                    "INSERT INTO api_keys(key_id, public_pem) VALUES (?1, ?2)
                     ON CONFLICT(key_id) DO UPDATE SET public_pem=excluded.public_pem",
                    [id, pem],
                )?;
                Ok(())
            })
            .await?;
        self.inner.keys.insert(key_id.to_owned(), public.clone());
        self.inner.verified.clear();
        Ok(())
    }

    /// A signal of appends to the stream `stream_ocid`: the messages (and their value bytes)
    /// PutMessages made durable in it since the first watcher, changed after each commit.
    /// In-process readers (the local stack's connector pump) wait on it instead of polling
    /// GetMessages, as Connector Hub, which reads streams from inside OCI, costs its users
    /// nothing while a stream is idle.
    pub fn appended(&self, stream_ocid: &str) -> tokio::sync::watch::Receiver<Appended> {
        if let Ok(map) = self.inner.appended.read() {
            if let Some(tx) = map.get(stream_ocid) {
                return tx.subscribe();
            }
        }
        match self.inner.appended.write() {
            Ok(mut map) => map
                .entry(stream_ocid.to_owned())
                .or_insert_with(|| tokio::sync::watch::channel(Appended::default()).0)
                .subscribe(),
            // A poisoned map: a receiver that never changes; the reader's timeout still polls.
            Err(_) => tokio::sync::watch::channel(Appended::default()).1,
        }
    }

    /// GetObject and HeadObject calls on object `name` of `bucket` since the emulator started,
    /// answered or not (a 304 to a conditional GET counts): what the functions' reads of an
    /// object cost, as OCI would bill and throttle them (the benchmark's routes-object reads).
    pub fn object_reads(&self, bucket: &str, name: &str) -> u64 {
        self.inner.object_reads.get(bucket, name)
    }

    /// Every notification published so far, oldest first (for tests).
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store cannot be read.
    pub async fn notifications(&self) -> Result<Vec<PublishedNotification>, EmulatorError> {
        Ok(self.inner.store.read(notifications::list_published).await?)
    }

    /// How many notifications were published in all, and the last `limit`, oldest first (for
    /// the status page: its cost does not grow with the history).
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store cannot be read.
    pub async fn recent_notifications(
        &self,
        limit: usize,
    ) -> Result<(u64, Vec<PublishedNotification>), EmulatorError> {
        Ok(self
            .inner
            .store
            .read(move |conn| notifications::recent_published(conn, limit))
            .await?)
    }

    /// Whether the database takes writes: how many failed and the last failure (for the
    /// status page; a failed write answers 503).
    pub fn storage_health(&self) -> crate::StorageHealth {
        self.inner.store.health()
    }

    /// Depth per partition and consumer-group positions of every stream.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store cannot be read.
    pub async fn stream_stats(&self) -> Result<Vec<StreamStats>, EmulatorError> {
        Ok(self.inner.store.read(streaming::stats).await?)
    }

    /// When each `(partition, offset)` of stream `stream_id` was appended (milliseconds since
    /// the epoch); `None` where no message is stored. The status page's consumer ages.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the stream is unknown or the store fails.
    pub async fn append_times(
        &self,
        stream_id: &str,
        positions: Vec<(i64, i64)>,
    ) -> Result<Vec<Option<i64>>, EmulatorError> {
        let id = stream_id.to_owned();
        Ok(self
            .inner
            .store
            .read(move |conn| streaming::append_times(conn, &id, &positions))
            .await?)
    }

    /// Up to `limit` messages of partition `partition` of stream `stream_id` from offset `from`
    /// on, oldest first, or the newest `limit` of them newest first (the status page's failing
    /// messages and dead letters).
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the stream is unknown or the store fails.
    pub async fn read_messages(
        &self,
        stream_id: &str,
        partition: i64,
        from: i64,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<streaming::StoredMessage>, EmulatorError> {
        let id = stream_id.to_owned();
        Ok(self
            .inner
            .store
            .read(move |conn| {
                streaming::read_messages(conn, &id, partition, from, limit, newest_first)
            })
            .await?)
    }

    /// Runs the retention sweep now, as if the clock read `now` (the sweeper calls this every
    /// [`EmulatorOptions::retention_sweep`]); returns how many messages were deleted.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store fails.
    pub async fn trim_retention(&self, now: SystemTime) -> Result<u64, EmulatorError> {
        Ok(streaming::trim(&self.inner, now).await?)
    }

    /// Creates the log group and log `spec` names when absent (Logging Search serves them);
    /// their OCIDs.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store fails.
    pub async fn ensure_log(
        &self,
        spec: crate::logging::LogSpec,
    ) -> Result<crate::logging::LogIds, EmulatorError> {
        Ok(crate::logging::ensure_log(&self.inner, spec).await?)
    }

    /// Appends `lines` to the log `log_id` (one transaction), as OCI Logging collects a
    /// function's output; how many were written.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the log does not exist or the store fails.
    pub async fn append_log_lines(
        &self,
        log_id: &str,
        lines: Vec<crate::logging::LogLine>,
    ) -> Result<usize, EmulatorError> {
        Ok(crate::logging::append(&self.inner, log_id, lines).await?)
    }

    /// Runs the log retention sweep now, as if the clock read `now`; how many records were
    /// deleted.
    ///
    /// # Errors
    /// [`EmulatorError::Api`] when the store fails.
    pub async fn trim_logs(&self, now: SystemTime) -> Result<u64, EmulatorError> {
        Ok(crate::logging::trim(&self.inner, now).await?)
    }

    /// Stops the writers after what is queued (also done on drop of the last clone).
    pub fn close(&self) {
        self.inner.store.close();
        self.inner.logs.close();
    }
}

/// Opens the logs database at `path`. A damaged one is moved aside (to
/// `<name>.damaged-<unix seconds>`, with its `-wal` and `-shm` files) and a new one begun, with
/// a warning naming both: the trace lines are a record of what happened, not data anyone was
/// promised, so losing them must not keep the stack (and the messages) from starting.
fn open_logs(path: &Path) -> Result<store::Store, EmulatorError> {
    let detail = match store::Store::open_logs(path) {
        Err(EmulatorError::Damaged { detail, .. }) => detail,
        opened => return opened,
    };
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = PathBuf::from(format!("{}.damaged-{secs}", path.display()));
    for suffix in ["", "-wal", "-shm"] {
        let (from, to) = (
            PathBuf::from(format!("{}{suffix}", path.display())),
            PathBuf::from(format!("{}{suffix}", aside.display())),
        );
        if from.exists() {
            std::fs::rename(&from, &to).map_err(EmulatorError::io("moving aside", &from))?;
        }
    }
    tracing::warn!(
        damaged = %aside.display(),
        detail = %detail,
        "the log database {} was damaged: moved aside, trace lines start afresh",
        path.display()
    );
    store::Store::open_logs(path)
}

/// Runs a write while no runtime may be available (during [`Emulator::open`]).
fn block_on_write(
    store: &Arc<store::Store>,
    f: impl FnOnce(&rusqlite::Connection) -> Result<(), ApiError> + Send + 'static,
) -> Result<(), EmulatorError> {
    let store = Arc::clone(store);
    let fut = async move { store.write(move |conn, _| f(conn)).await };
    // A private current-thread runtime on a scoped thread, so this works inside or outside a
    // caller's runtime.
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(EmulatorError::Serve)?
                .block_on(fut)
                .map_err(EmulatorError::from)
        })
        .join()
        .unwrap_or_else(|_| Err(EmulatorError::Corrupt("the setup thread panicked".into())))
    })
}
