//! Routes (issue 21): operator-defined targets, so sources send their own data
//! (`{"route": "orders", "data": {...}}`) and the middle tier filters, transforms and
//! routes it. See `docs/routes.md`.
//!
//! - [`RouteDef`]: a route as written (TOML `[[routes]]` or JSON `{"routes": [...]}`).
//! - [`Route`]: a route checked and compiled; [`Route::filter`], [`Route::key`] and
//!   [`Route::resolve`] (→ [`ResolvedCall`]) run its jq programs, each bounded by
//!   [`Limits`].
//! - [`RouteSet`]: the routes of a deployment, by name.
//! - [`RouteError`]: names the route and field and carries jaq's message.
//! - [`RoutesSource`]: the routes object on Object Storage (`routes_object`), cached and
//!   re-read when its ETag changes.

mod def;
mod error;
mod natives;
mod program;
mod route;
mod source;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use def::{RouteDef, MAX_NAME, OPERATIONS};
pub use error::{Field, RouteError};
pub use program::{EvalError, Limits, Take, CHECK_EVERY};
pub use route::{Input, ResolvedCall, Route};
pub use source::{NotBucketObject, RoutesObject, RoutesSource, RoutesUnavailable, CHECK_INTERVAL};

/// The document both forms share: `[[routes]]` tables in TOML, `{"routes": [...]}` in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutesDoc {
    #[serde(default)]
    routes: Vec<RouteDef>,
}

/// The routes of a deployment, checked and compiled, by name. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct RouteSet {
    routes: Arc<[Route]>,
}

impl RouteSet {
    /// Reads `[[routes]]` tables (the `datasync up --config` form) and compiles them.
    /// Other top-level keys are ignored, so the routes can sit in a larger config file.
    ///
    /// # Errors
    /// The document does not parse, a route breaks a rule or does not compile, or two
    /// routes share a name.
    pub fn from_toml(text: &str) -> Result<Self, RouteError> {
        #[derive(Deserialize)]
        struct Tables {
            #[serde(default)]
            routes: Vec<RouteDef>,
        }
        let doc: Tables = toml::from_str(text).map_err(|e| RouteError::Syntax(e.to_string()))?;
        Self::from_defs(doc.routes)
    }

    /// Reads the JSON form, `{"routes": [...]}` (the routes object on OCI).
    ///
    /// # Errors
    /// As [`from_toml`](Self::from_toml).
    pub fn from_json(bytes: &[u8]) -> Result<Self, RouteError> {
        let doc: RoutesDoc =
            serde_json::from_slice(bytes).map_err(|e| RouteError::Syntax(e.to_string()))?;
        Self::from_defs(doc.routes)
    }

    /// Checks and compiles `defs` with the default [`Limits`].
    ///
    /// # Errors
    /// As [`from_toml`](Self::from_toml).
    pub fn from_defs(defs: Vec<RouteDef>) -> Result<Self, RouteError> {
        Self::with_limits(defs, Limits::default())
    }

    /// Checks and compiles `defs`, evaluating their programs under `limits`.
    ///
    /// # Errors
    /// As [`from_toml`](Self::from_toml).
    pub fn with_limits(defs: Vec<RouteDef>, limits: Limits) -> Result<Self, RouteError> {
        let mut routes: Vec<Route> = Vec::with_capacity(defs.len());
        for def in defs {
            if routes.iter().any(|r| r.name() == def.name) {
                return Err(RouteError::Duplicate { route: def.name });
            }
            routes.push(Route::compile(def, limits)?);
        }
        Ok(Self {
            routes: routes.into(),
        })
    }

    /// The JSON form of the definitions (what [`from_json`](Self::from_json) reads).
    pub fn to_json(&self) -> String {
        let doc = RoutesDoc {
            routes: self.routes.iter().map(|r| r.def().clone()).collect(),
        };
        // A struct of strings and maps of strings always serialises.
        serde_json::to_string(&doc).unwrap_or_default()
    }

    /// The route named `name`.
    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name() == name)
    }

    /// The routes' names, in definition order.
    pub fn names(&self) -> Vec<&str> {
        self.routes.iter().map(Route::name).collect()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Refuses a route whose `status_callback` breaks `policy` (the deployment's allow-list and
    /// scheme rule), as a request's `statusCallback` would be refused.
    ///
    /// # Errors
    /// The first route whose callback breaks a rule, naming it and `status_callback`.
    pub fn check_callbacks(&self, policy: &crate::message::Policy) -> Result<(), RouteError> {
        for route in self.routes.iter() {
            if let Some(callback) = &route.def().status_callback {
                route.def().check_callback(callback, policy)?;
            }
        }
        Ok(())
    }

    /// Refuses a plain-http target where the deployment does not allow them (the sample
    /// format's `allow_http` rule; the other target rules are checked when loading).
    ///
    /// # Errors
    /// The first route with an http target.
    pub fn check_scheme(&self, allow_http: bool) -> Result<(), RouteError> {
        if allow_http {
            return Ok(());
        }
        match self.routes.iter().find(|r| r.target().scheme() != "https") {
            Some(route) => Err(RouteError::Invalid {
                route: route.name().to_owned(),
                field: Field::Target,
                rule: "must use https (plain http is not allowed by this deployment)".into(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
