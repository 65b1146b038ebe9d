//! The rules that hold a resource's or data source's body against the provider schema: unknown
//! and read-only names at any depth, block-versus-argument syntax, blocks given twice, dynamic
//! blocks, `lifecycle.ignore_changes`, conflicting and missing arguments.

use std::collections::{BTreeMap, BTreeSet};

use hcl_edit::expr::Expression;
use hcl_edit::structure::{Attribute, Block, Body};

use crate::findings::{did_you_mean, Findings};
use crate::schema::{Arg, AttributeBlock, Kind, Schema, TypeSchema};
use crate::terraform_support::{attr, label, TfFile};

/// Arguments Terraform itself takes on every resource and data source.
const META_ARGUMENTS: [&str; 4] = ["count", "for_each", "depends_on", "provider"];

/// The top-level body being checked (a resource's or a data source's): Terraform's
/// meta-arguments and meta-blocks are allowed there.
#[derive(Clone, Copy)]
enum Top<'s> {
    Resource(&'s TypeSchema),
    Data,
}

/// What a body may hold, from the schema.
#[derive(Clone, Copy)]
struct Spec<'s> {
    args: &'s BTreeMap<String, Arg>,
    /// The readable names at this level (setting one that is not an argument is an error).
    readable: Option<&'s BTreeSet<String>>,
    attribute_blocks: Option<&'s BTreeMap<String, AttributeBlock>>,
    top: Option<Top<'s>>,
}

impl<'s> Spec<'s> {
    /// The spec of a top-level resource or data source body.
    fn of_type(ty: &'s TypeSchema, top: Top<'s>) -> Spec<'s> {
        Spec {
            args: &ty.args,
            readable: Some(&ty.attributes),
            attribute_blocks: Some(&ty.attribute_blocks),
            top: Some(top),
        }
    }

    /// The spec of the nested block `name`, whose argument is `arg`.
    fn nested(&self, name: &str, arg: &'s Arg) -> Spec<'s> {
        let sub = self.attribute_blocks.and_then(|blocks| blocks.get(name));
        Spec {
            args: &arg.block,
            readable: sub.map(|s| &s.attributes),
            attribute_blocks: sub.map(|s| &s.attribute_blocks),
            top: None,
        }
    }

    /// The names of its blocks (`blocks`) or of its other arguments.
    fn names(&self, blocks: bool) -> impl Iterator<Item = &'s str> {
        self.args
            .iter()
            .filter(move |(_, arg)| arg.kind.is_block() == blocks)
            .map(|(name, _)| name.as_str())
    }

    fn is_readable(&self, name: &str) -> bool {
        self.readable.is_some_and(|r| r.contains(name))
    }
}

/// The file whose bodies are being checked, and where findings go.
struct Cx<'a> {
    file: &'a TfFile,
    findings: &'a mut Findings,
}

/// The names a body provides: its arguments and blocks (a `dynamic "x"` block provides `x`).
type Present<'b> = BTreeSet<&'b str>;

/// Checks every resource and data source body in `files` against `schema`.
pub fn check_bodies(files: &[TfFile], schema: &Schema, findings: &mut Findings) {
    for file in files {
        for block in file.body.blocks() {
            let (Some(rtype), Some(name)) = (label(block, 0), label(block, 1)) else {
                continue;
            };
            let (table, top_label, what) = match block.ident.as_str() {
                "resource" => (&schema.resources, format!("{rtype}.{name}"), "resource"),
                "data" => (
                    &schema.data_sources,
                    format!("data.{rtype}.{name}"),
                    "data source",
                ),
                _ => continue,
            };
            let mut cx = Cx { file, findings };
            let Some(ty) = known_type(&mut cx, table, block, what) else {
                continue;
            };
            let top = if what == "resource" {
                Top::Resource(ty)
            } else {
                Top::Data
            };
            check_body(
                &mut cx,
                &top_label,
                &block.body,
                Spec::of_type(ty, top),
                block,
            );
        }
    }
}

/// Rule: a type missing from the schema is a warning (its body is not checked), not an error.
fn known_type<'s>(
    cx: &mut Cx<'_>,
    table: &'s BTreeMap<String, TypeSchema>,
    block: &Block,
    what: &str,
) -> Option<&'s TypeSchema> {
    let rtype = label(block, 0)?;
    let ty = table.get(rtype);
    if ty.is_none() {
        let message = format!(
            "{what} type \"{rtype}\" is not in tests/data/oci-terraform-schema.json (body not checked)"
        );
        cx.findings
            .warning(cx.file, cx.file.line_of(block), message);
    }
    ty
}

/// Checks one body (of `owner`, named `name` in messages) against `spec`, then its nested blocks.
fn check_body(cx: &mut Cx<'_>, name: &str, body: &Body, spec: Spec<'_>, owner: &Block) {
    let mut present = Present::new();
    for attribute in body.attributes() {
        check_attribute(cx, name, spec, attribute, &mut present);
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for block in body.blocks() {
        let count = seen.entry(block.ident.as_str()).or_default();
        *count += 1;
        check_block(cx, name, spec, block, *count, &mut present);
    }
    let line = cx.file.line_of(owner);
    check_conflicts(cx, name, spec, &present, line);
    check_required(cx, name, spec, &present, line);
}

/// Rule: `key = value` names a settable argument that is not a block.
fn check_attribute<'b>(
    cx: &mut Cx<'_>,
    name: &str,
    spec: Spec<'_>,
    attribute: &'b Attribute,
    present: &mut Present<'b>,
) {
    let key = attribute.key.as_str();
    if spec.top.is_some() && META_ARGUMENTS.contains(&key) {
        return;
    }
    let line = cx.file.line_of(attribute);
    let message = match spec.args.get(key) {
        Some(arg) if arg.kind.is_block() => {
            present.insert(key);
            format!(
                "{name}: \"{key}\" is a nested block; write `{key} {{ ... }}`, not `{key} = ...`"
            )
        }
        Some(_) => {
            present.insert(key);
            return;
        }
        None if spec.is_readable(key) => {
            format!("{name}: \"{key}\" is a read-only (computed) attribute and cannot be set")
        }
        None => {
            let hint = did_you_mean(key, spec.names(false));
            format!("{name}: unknown argument \"{key}\"{hint}")
        }
    };
    cx.findings.error(cx.file, line, message);
}

/// Rule: `kind { ... }` names a nested block of the schema (a single block at most once) or a
/// meta-block, and its body holds in turn.
fn check_block<'b>(
    cx: &mut Cx<'_>,
    name: &str,
    spec: Spec<'_>,
    block: &'b Block,
    occurrence: usize,
    present: &mut Present<'b>,
) {
    let kind = block.ident.as_str();
    if kind == "dynamic" {
        return check_dynamic(cx, name, spec, block, present);
    }
    if check_meta_block(cx, name, spec, block) {
        return;
    }
    let line = cx.file.line_of(block);
    let message = match spec.args.get(kind) {
        Some(arg) if !arg.kind.is_block() => {
            present.insert(kind);
            format!(
                "{name}: \"{kind}\" is an argument ({}), not a block; write `{kind} = ...`",
                arg.kind.name()
            )
        }
        Some(arg) => {
            present.insert(kind);
            let nested = format!("{name}.{kind}");
            check_body(cx, &nested, &block.body, spec.nested(kind, arg), block);
            if arg.kind != Kind::Block || occurrence != 2 {
                return;
            }
            format!("{name}: block \"{kind}\" may appear at most once")
        }
        None if spec.is_readable(kind) => {
            format!("{name}: \"{kind}\" is a read-only (computed) attribute, not a block")
        }
        None => {
            let hint = did_you_mean(kind, spec.names(true));
            format!("{name}: unknown block type \"{kind}\"{hint}")
        }
    };
    cx.findings.error(cx.file, line, message);
}

/// The meta-blocks Terraform takes: `lifecycle` (checked here), `provisioner` and `connection`
/// on resources, `timeouts` where the schema says so. Returns whether `block` is one.
fn check_meta_block(cx: &mut Cx<'_>, name: &str, spec: Spec<'_>, block: &Block) -> bool {
    let kind = block.ident.as_str();
    match spec.top {
        Some(Top::Resource(ty)) if kind == "lifecycle" => {
            check_ignore_changes(cx, name, ty, block);
            true
        }
        Some(Top::Resource(_)) if kind == "provisioner" || kind == "connection" => true,
        Some(Top::Resource(ty)) => kind == "timeouts" && ty.timeouts,
        Some(Top::Data) => kind == "lifecycle",
        None => false,
    }
}

/// Rule: `lifecycle { ignore_changes = [...] }` names attributes the resource has.
fn check_ignore_changes(cx: &mut Cx<'_>, name: &str, ty: &TypeSchema, lifecycle: &Block) {
    let Some(value) = attr(&lifecycle.body, "ignore_changes") else {
        return;
    };
    let items: Vec<&Expression> = match value {
        Expression::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        let root = match item {
            Expression::Variable(v) if v.as_str() == "all" => continue,
            Expression::Variable(v) => v.as_str(),
            Expression::Traversal(t) => match &t.expr {
                Expression::Variable(v) => v.as_str(),
                _ => continue,
            },
            Expression::String(s) => s.split(['.', '[']).next().unwrap_or_default(),
            _ => continue,
        };
        if !ty.args.contains_key(root) && !ty.attributes.contains(root) {
            let known = ty.args.keys().chain(&ty.attributes).map(String::as_str);
            let hint = did_you_mean(root, known);
            let message = format!(
                "{name}: lifecycle.ignore_changes names unknown attribute \"{root}\"{hint}"
            );
            cx.findings.error(cx.file, cx.file.line_of(item), message);
        }
    }
}

/// Rule: a `dynamic "x"` block generates a nested block `x` of the schema (and so provides it),
/// with a `for_each` and exactly one `content` block whose body holds in turn.
fn check_dynamic<'b>(
    cx: &mut Cx<'_>,
    name: &str,
    spec: Spec<'_>,
    dynamic: &'b Block,
    present: &mut Present<'b>,
) {
    let line = cx.file.line_of(dynamic);
    let Some(kind) = label(dynamic, 0) else {
        cx.findings.error(
            cx.file,
            line,
            format!("{name}: a dynamic block needs a label"),
        );
        return;
    };
    let arg = match spec.args.get(kind) {
        Some(arg) if arg.kind.is_block() => arg,
        found => {
            let why = match found {
                Some(arg) => format!("is an argument ({}), not a block", arg.kind.name()),
                None if spec.is_readable(kind) => "is a read-only attribute, not a block".into(),
                None => format!(
                    "is not a block of this type{}",
                    did_you_mean(kind, spec.names(true))
                ),
            };
            cx.findings.error(
                cx.file,
                line,
                format!("{name}: dynamic \"{kind}\": \"{kind}\" {why}"),
            );
            return;
        }
    };
    present.insert(kind);
    for attribute in dynamic.body.attributes() {
        let key = attribute.key.as_str();
        if !["for_each", "iterator", "labels"].contains(&key) {
            let message = format!("{name}: dynamic \"{kind}\": unexpected argument \"{key}\"");
            cx.findings
                .error(cx.file, cx.file.line_of(attribute), message);
        }
    }
    if !dynamic.body.has_attribute("for_each") {
        let message = format!("{name}: dynamic \"{kind}\": missing required argument \"for_each\"");
        cx.findings.error(cx.file, line, message);
    }
    let contents: Vec<&Block> = dynamic.body.get_blocks("content").collect();
    if contents.len() != 1 || dynamic.body.blocks().count() != 1 {
        let message =
            format!("{name}: dynamic \"{kind}\": needs exactly one content block and no other");
        cx.findings.error(cx.file, line, message);
    }
    for content in contents {
        check_body(
            cx,
            &format!("{name}.{kind}"),
            &content.body,
            spec.nested(kind, arg),
            dynamic,
        );
    }
}

/// Rule: no two arguments the schema says conflict (`conflicts_with`) are both set.
fn check_conflicts(
    cx: &mut Cx<'_>,
    name: &str,
    spec: Spec<'_>,
    present: &Present<'_>,
    line: usize,
) {
    for &key in present {
        let Some(arg) = spec.args.get(key) else {
            continue;
        };
        for other in &arg.conflicts_with {
            if key < other.as_str() && present.contains(other.as_str()) {
                let message = format!("{name}: \"{key}\" and \"{other}\" cannot both be set");
                cx.findings.error(cx.file, line, message);
            }
        }
    }
}

/// Rule: every required argument and block is present.
fn check_required(cx: &mut Cx<'_>, name: &str, spec: Spec<'_>, present: &Present<'_>, line: usize) {
    for (key, arg) in spec.args {
        if arg.required && !present.contains(key.as_str()) {
            let what = if arg.kind.is_block() {
                "block"
            } else {
                "argument"
            };
            let message = format!("{name}: missing required {what} \"{key}\"");
            cx.findings.error(cx.file, line, message);
        }
    }
}
