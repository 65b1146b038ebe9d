//! The provider schema, `tests/data/oci-terraform-schema.json`, as typed data.
//!
//! Only what the checks read is modelled; the Pulumi names and provenance fields in the file are
//! ignored here (see `tests/data/README.md` for where the file comes from).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// The argument and attribute schema of the resource types and data sources the project uses.
#[derive(Debug, Deserialize)]
pub struct Schema {
    pub resources: BTreeMap<String, TypeSchema>,
    pub data_sources: BTreeMap<String, TypeSchema>,
}

/// One resource type or data source.
#[derive(Debug, Deserialize)]
pub struct TypeSchema {
    /// The settable arguments (required or optional in the provider), by name.
    pub args: BTreeMap<String, Arg>,
    /// Every readable top-level attribute: the arguments, the computed ones and `id`.
    pub attributes: BTreeSet<String>,
    /// The readable sub-attributes of attributes that are lists of objects.
    #[serde(default)]
    pub attribute_blocks: BTreeMap<String, AttributeBlock>,
    /// Whether the resource takes a `timeouts { ... }` block.
    #[serde(default)]
    pub timeouts: bool,
}

/// A settable argument or nested block.
#[derive(Debug, Deserialize)]
pub struct Arg {
    pub required: bool,
    pub kind: Kind,
    /// For `block` and `block_list`: the block's own arguments.
    #[serde(default)]
    pub block: BTreeMap<String, Arg>,
    /// Arguments of the same body that must not be set together with this one.
    #[serde(default)]
    pub conflicts_with: Vec<String>,
}

/// How an argument is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    String,
    Number,
    Bool,
    Map,
    List,
    /// `name { ... }` at most once.
    Block,
    /// `name { ... }` any number of times.
    BlockList,
}

impl Kind {
    /// Whether it is written as a nested block rather than `name = value`.
    pub fn is_block(self) -> bool {
        matches!(self, Kind::Block | Kind::BlockList)
    }

    /// The schema's name for the kind, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Map => "map",
            Kind::List => "list",
            Kind::Block => "block",
            Kind::BlockList => "block_list",
        }
    }
}

/// The readable sub-attributes of a list-of-objects attribute (referenced as `name[0].sub`).
#[derive(Debug, Default, Deserialize)]
pub struct AttributeBlock {
    pub attributes: BTreeSet<String>,
    #[serde(default)]
    pub attribute_blocks: BTreeMap<String, AttributeBlock>,
}

/// The schema carried in `tests/data/`.
pub fn load() -> Schema {
    serde_json::from_str(include_str!("../data/oci-terraform-schema.json"))
        .expect("tests/data/oci-terraform-schema.json does not match the Schema types")
}
