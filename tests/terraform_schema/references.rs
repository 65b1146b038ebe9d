//! The rules on references (`var.X`, `local.X`, `module.X`, `TYPE.NAME...`, `data.TYPE.NAME...`):
//! each names something the module declares, and an attribute the schema says it has, indexed
//! where Terraform needs an index (a `count`/`for_each` resource, a list of blocks).

use std::collections::{BTreeMap, BTreeSet};

use hcl_edit::expr::{Expression, ForExpr, Traversal, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::template::ForTemplateExpr;
use hcl_edit::visit::{visit_traversal, Visit};
use hcl_edit::Span;

use crate::findings::{did_you_mean, Findings};
use crate::module::{Declarations, Place};
use crate::schema::{AttributeBlock, Schema, TypeSchema};
use crate::terraform_support::{attr, label, TfFile};

/// Roots Terraform provides in every module.
const BUILTIN_ROOTS: [&str; 5] = ["count", "each", "self", "path", "terraform"];

/// One step after a reference's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name`
    Attr(String),
    /// `[expr]` or a legacy `.0`
    Index,
    /// `[*]` or `.*`
    Splat,
}

/// A reference found in an expression: `root` and the steps after it.
#[derive(Debug)]
pub struct Reference {
    pub root: String,
    pub steps: Vec<Step>,
    /// Where it starts in the file, when the parser recorded it.
    pub offset: Option<usize>,
}

/// Collects the references of expressions, leaving out the names that `for` expressions and
/// `%{ for }` directives bind (and the ones the caller says are bound, such as a dynamic
/// block's iterator).
#[derive(Default)]
struct Collector {
    bound: Vec<String>,
    found: Vec<Reference>,
}

impl Visit for Collector {
    fn visit_traversal(&mut self, node: &Traversal) {
        if let Expression::Variable(root) = &node.expr {
            if !self.bound.iter().any(|b| b == root.as_str()) {
                self.found.push(Reference {
                    root: root.to_string(),
                    steps: node.operators.iter().map(|op| step(op.value())).collect(),
                    offset: node.span().map(|s| s.start),
                });
            }
        }
        // Index expressions hold references of their own.
        visit_traversal(self, node);
    }

    fn visit_for_expr(&mut self, node: &ForExpr) {
        self.visit_expr(&node.intro.collection_expr);
        let before = self.bound.len();
        self.bound
            .extend(node.intro.key_var.iter().map(|k| k.to_string()));
        self.bound.push(node.intro.value_var.to_string());
        if let Some(key) = &node.key_expr {
            self.visit_expr(key);
        }
        self.visit_expr(&node.value_expr);
        if let Some(cond) = &node.cond {
            self.visit_expr(&cond.expr);
        }
        self.bound.truncate(before);
    }

    fn visit_for_template_expr(&mut self, node: &ForTemplateExpr) {
        self.visit_expr(&node.collection_expr);
        let before = self.bound.len();
        self.bound
            .extend(node.key_var.iter().map(|k| k.to_string()));
        self.bound.push(node.value_var.to_string());
        self.visit_template(&node.template);
        self.bound.truncate(before);
    }
}

fn step(op: &TraversalOperator) -> Step {
    match op {
        TraversalOperator::GetAttr(name) => Step::Attr(name.to_string()),
        TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_) => Step::Index,
        TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_) => Step::Splat,
    }
}

/// The references in `expr`, with the names in `bound` left out.
pub fn references(expr: &Expression, bound: &[String]) -> Vec<Reference> {
    let mut collector = Collector {
        bound: bound.to_vec(),
        found: Vec::new(),
    };
    collector.visit_expr(expr);
    collector.found
}

/// What the reference rules look names up in.
struct Cx<'a, 'm> {
    file: &'a TfFile,
    decls: &'a Declarations<'m>,
    schema: &'a Schema,
    findings: &'a mut Findings,
}

/// Checks every reference in `files`.
pub fn check_references(
    files: &[TfFile],
    decls: &Declarations<'_>,
    schema: &Schema,
    findings: &mut Findings,
) {
    for file in files {
        let mut cx = Cx {
            file,
            decls,
            schema,
            findings,
        };
        for block in file.body.blocks() {
            // `terraform` holds no references; `moved` and `removed` name addresses that need
            // not exist any more.
            if !["terraform", "moved", "removed"].contains(&block.ident.as_str()) {
                walk_body(&mut cx, block.ident.as_str(), &block.body, &[]);
            }
        }
    }
}

/// Checks the references in `body` (the body of a `kind` block), with `bound` names in scope.
fn walk_body(cx: &mut Cx<'_, '_>, kind: &str, body: &Body, bound: &[String]) {
    for attribute in body.attributes() {
        // ignore_changes names the resource's own attributes, not references.
        if kind == "lifecycle" && attribute.key.as_str() == "ignore_changes" {
            continue;
        }
        check_expr(cx, &attribute.value, bound, cx.file.line_of(attribute));
    }
    for block in body.blocks() {
        if block.ident.as_str() == "dynamic" {
            walk_dynamic(cx, block, bound);
        } else {
            walk_body(cx, block.ident.as_str(), &block.body, bound);
        }
    }
}

/// A `dynamic` block: `for_each` is read outside the iterator's scope, `content` and `labels`
/// inside it.
fn walk_dynamic(cx: &mut Cx<'_, '_>, dynamic: &Block, bound: &[String]) {
    let iterator = match attr(&dynamic.body, "iterator") {
        Some(Expression::Variable(v)) => Some(v.to_string()),
        _ => label(dynamic, 0).map(str::to_string),
    };
    let mut inner = bound.to_vec();
    inner.extend(iterator);
    for attribute in dynamic.body.attributes() {
        let line = cx.file.line_of(attribute);
        match attribute.key.as_str() {
            "for_each" => check_expr(cx, &attribute.value, bound, line),
            "labels" => check_expr(cx, &attribute.value, &inner, line),
            _ => {}
        }
    }
    for content in dynamic.body.blocks() {
        walk_body(cx, content.ident.as_str(), &content.body, &inner);
    }
}

fn check_expr(cx: &mut Cx<'_, '_>, expr: &Expression, bound: &[String], line: usize) {
    for reference in references(expr, bound) {
        let line = reference.offset.map_or(line, |o| cx.file.line_at(o));
        if let Some(message) = problem(cx.decls, cx.schema, &reference) {
            cx.findings.error(cx.file, line, message);
        }
    }
}

/// What is wrong with `reference`, if anything.
pub fn problem(decls: &Declarations<'_>, schema: &Schema, reference: &Reference) -> Option<String> {
    let root = reference.root.as_str();
    let steps = &reference.steps[..];
    let first = match steps.first() {
        Some(Step::Attr(name)) => name.as_str(),
        _ => return None,
    };
    match root {
        _ if BUILTIN_ROOTS.contains(&root) => None,
        "var" => undeclared(&decls.variables, first, |hint| {
            format!("reference to undeclared input variable var.{first} (no variable \"{first}\" block){hint}")
        }),
        "local" => undeclared(&decls.locals, first, |hint| {
            format!("reference to undeclared local value local.{first}{hint}")
        }),
        "module" => undeclared(&decls.modules, first, |_| {
            format!("reference to undeclared module module.{first}")
        }),
        "data" => {
            let [_, Step::Attr(name), rest @ ..] = steps else {
                return None;
            };
            let Some(place) = decls.data.get(&(first, name.as_str())) else {
                return Some(format!(
                    "reference to undeclared data source data.{first}.{name}"
                ));
            };
            let label = format!("data.{first}.{name}");
            attribute_path(&label, place, schema.data_sources.get(first), rest)
        }
        _ if looks_like_resource_type(decls, schema, root) => {
            let rest = &steps[1..];
            let Some(place) = decls.resources.get(&(root, first)) else {
                return Some(format!("reference to undeclared resource {root}.{first}"));
            };
            let label = format!("{root}.{first}");
            attribute_path(&label, place, schema.resources.get(root), rest)
        }
        _ => None,
    }
}

/// `Some(message(hint))` when `name` is not a key of `table`; `hint` suggests a close key.
fn undeclared<T>(
    table: &BTreeMap<&str, T>,
    name: &str,
    message: impl FnOnce(String) -> String,
) -> Option<String> {
    (!table.contains_key(name)).then(|| message(did_you_mean(name, table.keys().copied())))
}

/// Whether `root` is a resource type: declared, in the schema, or shaped like one
/// (`provider_thing`); names bound by `for` and dynamic blocks never get here.
fn looks_like_resource_type(decls: &Declarations<'_>, schema: &Schema, root: &str) -> bool {
    let shaped = root.split_once('_').is_some_and(|(provider, rest)| {
        provider.starts_with(|c: char| c.is_ascii_lowercase())
            && provider
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    });
    shaped || schema.resources.contains_key(root) || decls.resources.keys().any(|(t, _)| *t == root)
}

/// Rule: the steps after `TYPE.NAME` index a `count`/`for_each` resource, then name an attribute
/// the schema has, indexing lists of blocks before their sub-attributes.
fn attribute_path(
    label: &str,
    place: &Place<'_, Block>,
    ty: Option<&TypeSchema>,
    steps: &[Step],
) -> Option<String> {
    let steps = match steps.first() {
        None => return None,
        Some(Step::Index | Step::Splat) => &steps[1..],
        Some(Step::Attr(name)) if place.is_multi() => {
            return Some(format!(
                "{label} uses count/for_each: index it (e.g. {label}[0].{name} or {label}[*].{name})"
            ));
        }
        Some(Step::Attr(_)) => steps,
    };
    let ty = ty?;
    let known: BTreeSet<&str> = ty
        .attributes
        .iter()
        .chain(ty.args.keys())
        .map(String::as_str)
        .collect();
    sub_attribute_path(label, &known, &ty.attribute_blocks, steps)
}

fn sub_attribute_path(
    label: &str,
    known: &BTreeSet<&str>,
    blocks: &BTreeMap<String, AttributeBlock>,
    steps: &[Step],
) -> Option<String> {
    let [Step::Attr(name), rest @ ..] = steps else {
        return None;
    };
    if !known.contains(name.as_str()) {
        let hint = did_you_mean(name, known.iter().copied());
        return Some(format!(
            "reference to unknown attribute \"{name}\" of {label}{hint}"
        ));
    }
    let sub = blocks.get(name)?;
    match rest {
        [Step::Attr(next), ..] => Some(format!(
            "{label}.{name} is a list of blocks: use {label}.{name}[0].{next}"
        )),
        [Step::Index | Step::Splat, rest @ ..] => {
            let known: BTreeSet<&str> = sub.attributes.iter().map(String::as_str).collect();
            let label = format!("{label}.{name}[*]");
            sub_attribute_path(&label, &known, &sub.attribute_blocks, rest)
        }
        [] => None,
    }
}
