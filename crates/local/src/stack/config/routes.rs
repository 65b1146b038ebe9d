//! `[[routes]]`: the operator's routes (docs/routes.md), in the same TOML file as the rest of
//! the stack's configuration and with exactly the keys `terraform/`'s `routes` variable takes.
//!
//! ```toml
//! [[routes]]
//! name = "orders"
//! target = "http://127.0.0.1:8081/orders"
//! operation = "POST"
//! filter = '.total > 0'
//! transform = '{id: .orderId, amount: .total}'
//! key = '.orderId | tostring'
//! ```
//!
//! Each table is read as a [`RouteDef`] and the set is checked and compiled by
//! [`RouteSet::from_defs`], the code the functions load their routes object with: a route that
//! does not parse or compile stops `datasync up` before anything starts, naming the route and
//! carrying jq's message. What the stack keeps is the set's JSON form ([`RouteSet::to_json`]),
//! which it puts into the emulator's Object Storage for the functions to read, as
//! `terraform/routes.tf` uploads it on OCI.

use datasync_core::routes::{RouteDef, RouteSet};
use serde::Deserialize as _;

use super::ConfigError;

/// The routes as the stack hands them to the functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesSettings {
    /// The route names, in the file's order.
    pub names: Vec<String>,
    /// The route set's JSON form (`{"routes":[...]}`), the object the functions read.
    pub json: Vec<u8>,
}

impl Default for RoutesSettings {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            json: RouteSet::default().to_json().into_bytes(),
        }
    }
}

/// Compiles the `[[routes]]` tables of a configuration file.
///
/// # Errors
/// As [`parse`].
pub(super) fn compile(tables: &[toml::Table]) -> Result<RoutesSettings, ConfigError> {
    let set = parse(tables)?;
    Ok(RoutesSettings {
        names: set.names().into_iter().map(str::to_owned).collect(),
        json: set.to_json().into_bytes(),
    })
}

/// The tables as a route set, checked and compiled.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the table (and its route's name) when a table is not a
/// route (an unknown or mistyped key); [`ConfigError::Route`] naming the route when it breaks a
/// rule or a program does not compile.
pub fn parse(tables: &[toml::Table]) -> Result<RouteSet, ConfigError> {
    let defs = tables
        .iter()
        .enumerate()
        .map(|(i, table)| {
            RouteDef::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                let name = table
                    .get("name")
                    .and_then(toml::Value::as_str)
                    .map(|n| format!(" (route {n:?})"))
                    .unwrap_or_default();
                ConfigError::Invalid {
                    field: format!("routes[{i}]{name}"),
                    problem: e.to_string().trim().to_owned(),
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    RouteSet::from_defs(defs).map_err(ConfigError::Route)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::StackConfig;

    fn settings(text: &str) -> Result<super::super::StackSettings, super::ConfigError> {
        StackConfig::parse(text).unwrap().into_settings()
    }

    #[test]
    fn the_documented_route_compiles_into_its_json_form() {
        let example = super::super::toml_example(include_str!("routes.rs"));
        let s = settings(&example).unwrap();
        assert_eq!(s.routes.names, ["orders"]);
        let json: serde_json::Value = serde_json::from_slice(&s.routes.json).unwrap();
        assert_eq!(
            json["routes"][0]["transform"],
            "{id: .orderId, amount: .total}"
        );
        // The JSON form is what the functions read back.
        let set = datasync_core::routes::RouteSet::from_json(&s.routes.json).unwrap();
        assert_eq!(set.names(), ["orders"]);
    }

    #[test]
    fn no_routes_is_an_empty_route_set() {
        let s = settings("").unwrap();
        assert!(s.routes.names.is_empty());
        let set = datasync_core::routes::RouteSet::from_json(&s.routes.json).unwrap();
        assert!(set.is_empty());
    }

    #[test]
    fn a_route_that_does_not_compile_or_parse_is_named() {
        let broken = "[[routes]]\nname = \"fine\"\ntarget = \"https://a.example/x\"\n\n\
                      [[routes]]\nname = \"broken\"\ntarget = \"https://a.example/y\"\n\
                      transform = '{id: .orderId'\n";
        let e = settings(broken).unwrap_err().to_string();
        assert!(
            e.starts_with("configuration routes: route \"broken\": transform does not compile"),
            "{e}"
        );
        let typo =
            "[[routes]]\nname = \"orders\"\ntarget = \"https://a.example/x\"\ntransfrom = '.'\n";
        let e = settings(typo).unwrap_err().to_string();
        assert!(
            e.contains("routes[0] (route \"orders\")") && e.contains("transfrom"),
            "{e}"
        );
    }
}
