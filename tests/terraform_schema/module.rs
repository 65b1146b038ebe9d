//! A module's files and what they declare, with the rules that need nothing but the files:
//! files that do not parse, top-level blocks Terraform does not know, duplicate declarations.

use std::collections::BTreeMap;

use hcl_edit::structure::{Attribute, Block};

use crate::findings::{Findings, Level};
use crate::terraform_support::{label, TfFile};

/// Something declared, and where.
#[derive(Clone, Copy)]
pub struct Place<'m, T> {
    pub file: &'m TfFile,
    pub item: &'m T,
}

impl<'m, T: hcl_edit::Span> Place<'m, T> {
    /// `path:line` of the declaration.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.name, self.file.line_of(self.item))
    }
}

impl<'m> Place<'m, Block> {
    /// Whether the block is a `count` or `for_each` resource, so references to it need an index.
    pub fn is_multi(&self) -> bool {
        self.item.body.has_attribute("count") || self.item.body.has_attribute("for_each")
    }
}

/// Everything a module declares, by the name other blocks refer to it by.
#[derive(Default)]
pub struct Declarations<'m> {
    pub variables: BTreeMap<&'m str, Place<'m, Block>>,
    pub locals: BTreeMap<&'m str, Place<'m, Attribute>>,
    pub modules: BTreeMap<&'m str, Place<'m, Block>>,
    pub outputs: BTreeMap<&'m str, Place<'m, Block>>,
    /// By (type, name).
    pub resources: BTreeMap<(&'m str, &'m str), Place<'m, Block>>,
    /// By (type, name), without the `data.` prefix.
    pub data: BTreeMap<(&'m str, &'m str), Place<'m, Block>>,
}

/// Rule: every file parses. A file that does not is an error and is left out of the other checks.
pub fn parse_files(sources: &[(String, String)], findings: &mut Findings) -> Vec<TfFile> {
    sources
        .iter()
        .filter_map(|(name, text)| match TfFile::parse(name, text) {
            Ok(file) => Some(file),
            Err(e) => {
                findings.push(
                    &e.file,
                    e.line,
                    Level::Error,
                    format!("cannot parse HCL: {}", e.message),
                );
                None
            }
        })
        .collect()
}

/// The labels a top-level block of `kind` takes, or `None` for a kind Terraform does not know.
fn top_level_labels(kind: &str) -> Option<usize> {
    match kind {
        "resource" | "data" | "ephemeral" => Some(2),
        "variable" | "output" | "module" | "provider" | "check" => Some(1),
        "locals" | "terraform" | "moved" | "import" | "removed" => Some(0),
        _ => None,
    }
}

/// Rule: the top level holds only blocks Terraform knows, each with its number of labels.
/// Returns whether the block is well formed (only those are declared).
fn check_top_level_block(file: &TfFile, block: &Block, findings: &mut Findings) -> bool {
    let kind = block.ident.as_str();
    let line = file.line_of(block);
    match top_level_labels(kind) {
        None => {
            findings.error(
                file,
                line,
                format!("unknown top-level block type \"{kind}\""),
            );
            false
        }
        Some(n) if n != block.labels.len() => {
            findings.error(
                file,
                line,
                format!(
                    "a {kind} block takes {n} label(s), this one has {}",
                    block.labels.len()
                ),
            );
            false
        }
        Some(_) => true,
    }
}

/// Rule: nothing is declared twice. Records `key` in `table`, or reports the duplicate.
fn declare<'m, K: Ord, T: hcl_edit::Span>(
    table: &mut BTreeMap<K, Place<'m, T>>,
    key: K,
    place: Place<'m, T>,
    what: String,
    findings: &mut Findings,
) {
    if let Some(first) = table.get(&key) {
        let message = format!("duplicate declaration of {what} (first at {})", first.at());
        findings.error(place.file, place.file.line_of(place.item), message);
    } else {
        table.insert(key, place);
    }
}

/// What `files` declare, reporting unknown top-level blocks, arguments and duplicates.
pub fn declarations<'m>(files: &'m [TfFile], findings: &mut Findings) -> Declarations<'m> {
    let mut decls = Declarations::default();
    for file in files {
        for attr in file.body.attributes() {
            let message = format!(
                "unexpected argument \"{}\" at the top level of a module",
                attr.key.as_str()
            );
            findings.error(file, file.line_of(attr), message);
        }
        for block in file.body.blocks() {
            if !check_top_level_block(file, block, findings) {
                continue;
            }
            let place = Place { file, item: block };
            let (first, second) = (label(block, 0), label(block, 1));
            match (block.ident.as_str(), first, second) {
                ("variable", Some(n), _) => {
                    let what = format!("variable \"{n}\"");
                    declare(&mut decls.variables, n, place, what, findings);
                }
                ("output", Some(n), _) => {
                    let what = format!("output \"{n}\"");
                    declare(&mut decls.outputs, n, place, what, findings);
                }
                ("module", Some(n), _) => {
                    let what = format!("module \"{n}\"");
                    declare(&mut decls.modules, n, place, what, findings);
                }
                ("resource", Some(t), Some(n)) => {
                    let what = format!("resource {t}.{n}");
                    declare(&mut decls.resources, (t, n), place, what, findings);
                }
                ("data", Some(t), Some(n)) => {
                    let what = format!("data.{t}.{n}");
                    declare(&mut decls.data, (t, n), place, what, findings);
                }
                ("locals", _, _) => {
                    for attr in block.body.attributes() {
                        let name = attr.key.as_str();
                        let what = format!("local value \"{name}\"");
                        let place = Place { file, item: attr };
                        declare(&mut decls.locals, name, place, what, findings);
                    }
                }
                _ => {}
            }
        }
    }
    decls
}
