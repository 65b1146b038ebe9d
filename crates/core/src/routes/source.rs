//! [`RoutesSource`]: the routes object in Object Storage (function configuration
//! `routes_object` = `bucket/object`, the JSON form), read at cold start and again when its
//! ETag changes, checked at most every `routes_check_ms` (default [`CHECK_INTERVAL`]) with a
//! conditional GetObject
//! (`if-none-match` → 304). A broken object is reported on every call and the last good
//! routes are kept.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::oci::objectstorage::{ObjectRef, ObjectStorageClient};

use super::{RouteError, RouteSet};

/// How often the object's ETag is checked by default.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Where the routes object is: `bucket/object` (the namespace is the tenancy's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesObject {
    /// The bucket.
    pub bucket: String,
    /// The object name.
    pub object: String,
}

impl RoutesObject {
    /// Parses `bucket/object`.
    ///
    /// # Errors
    /// [`NotBucketObject`].
    pub fn parse(value: &str) -> Result<Self, NotBucketObject> {
        match value.trim().split_once('/') {
            Some((bucket, object)) if !bucket.is_empty() && !object.is_empty() => Ok(Self {
                bucket: bucket.to_owned(),
                object: object.to_owned(),
            }),
            _ => Err(NotBucketObject),
        }
    }
}

/// A `routes_object` value that is not `bucket/object`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be bucket/object")]
pub struct NotBucketObject;

impl std::fmt::Display for RoutesObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.bucket, self.object)
    }
}

/// Why no routes can be used: the object could not be read, or does not parse or compile
/// (and no good routes were read before).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesUnavailable {
    /// Reading the object failed.
    #[error("the routes object {object} could not be read: {detail}")]
    Read {
        /// `bucket/object`.
        object: String,
        /// The service's error.
        detail: String,
    },
    /// The object is not a valid routes document.
    #[error("the routes object {object} is broken: {source}")]
    Broken {
        /// `bucket/object`.
        object: String,
        /// What is wrong, naming the route.
        #[source]
        source: RouteError,
    },
}

#[derive(Debug, Default)]
struct State {
    /// The last good routes and their ETag.
    good: Option<(RouteSet, Option<String>)>,
    /// The ETag of a broken version (not re-read until it changes) and why it is broken.
    broken: Option<(Option<String>, RoutesUnavailable)>,
    checked: Option<Instant>,
    namespace: Option<String>,
}

/// The routes object and what was last read of it. One per function instance.
#[derive(Debug)]
pub struct RoutesSource {
    client: ObjectStorageClient,
    object: RoutesObject,
    check_interval: Duration,
    state: tokio::sync::Mutex<State>,
    reads: Mutex<u64>,
    /// The rules the routes' `status_callback`s must follow (`None`: form only).
    policy: Option<crate::message::Policy>,
}

impl RoutesSource {
    /// A source that has read nothing yet and checks the object's ETag every
    /// `check_interval`.
    pub fn new(
        client: ObjectStorageClient,
        object: RoutesObject,
        check_interval: Duration,
    ) -> Self {
        Self {
            client,
            object,
            check_interval,
            state: tokio::sync::Mutex::new(State::default()),
            reads: Mutex::new(0),
            policy: None,
        }
    }

    /// This source refusing, as broken, routes whose `status_callback` breaks `policy` (the
    /// function's allow-list and scheme rule).
    pub fn with_policy(mut self, policy: crate::message::Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// How many GetObject calls this source made (conditional ones included).
    pub fn reads(&self) -> u64 {
        self.reads.lock().map_or(0, |r| *r)
    }

    /// The current routes: re-checked when the check interval has passed since the last check.
    /// A broken or unreadable object leaves the last good routes in use; without any, the
    /// error is returned (every call then answers it).
    ///
    /// # Errors
    /// [`RoutesUnavailable`] when no good routes were ever read.
    pub async fn current(&self) -> Result<RouteSet, RoutesUnavailable> {
        let mut state = self.state.lock().await;
        let due = state
            .checked
            .is_none_or(|at| at.elapsed() >= self.check_interval);
        if due {
            state.checked = Some(Instant::now());
            if let Err(e) = self.refresh(&mut state).await {
                tracing::error!(object = %self.object, error = %e, "routes object unusable; keeping the last good routes if any");
                state.broken = Some((None, e));
            }
        }
        if let Some((set, _)) = &state.good {
            return Ok(set.clone());
        }
        match &state.broken {
            Some((_, e)) => Err(e.clone()),
            None => Ok(RouteSet::default()),
        }
    }

    async fn refresh(&self, state: &mut State) -> Result<(), RoutesUnavailable> {
        let read_error = |e: crate::oci::client::OciError| RoutesUnavailable::Read {
            object: self.object.to_string(),
            detail: e.to_string(),
        };
        let namespace = match &state.namespace {
            Some(n) => n.clone(),
            None => {
                let n = self.client.get_namespace().await.map_err(read_error)?;
                state.namespace = Some(n.clone());
                n
            }
        };
        // The version known: the broken one when it is newer than the good one.
        let known = match (&state.broken, &state.good) {
            (Some((Some(etag), _)), _) => Some(etag.clone()),
            (_, Some((_, etag))) => etag.clone(),
            _ => None,
        };
        if let Ok(mut r) = self.reads.lock() {
            *r += 1;
        }
        let target = ObjectRef {
            namespace: &namespace,
            bucket: &self.object.bucket,
            name: &self.object.object,
        };
        let Some(content) = self
            .client
            .get_object_if_changed(target, known.as_deref())
            .await
            .map_err(read_error)?
        else {
            return Ok(());
        };
        let checked = RouteSet::from_json(&content.body).and_then(|set| match &self.policy {
            Some(policy) => set.check_callbacks(policy).map(|()| set),
            None => Ok(set),
        });
        match checked {
            Ok(set) => {
                state.good = Some((set, content.etag));
                state.broken = None;
                Ok(())
            }
            Err(source) => {
                let e = RoutesUnavailable::Broken {
                    object: self.object.to_string(),
                    source,
                };
                tracing::error!(object = %self.object, error = %e, "routes object broken; keeping the last good routes if any");
                state.broken = Some((content.etag, e));
                Ok(())
            }
        }
    }
}
