//! Reading `terraform/` for the tests that check it (`terraform_schema`, `terraform_config`).
//!
//! Both parse the `.tf` files with hcl-edit, the project's one HCL reader: its syntax tree keeps
//! each item's byte span, so a finding can name the line it is about.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::path::{Path, PathBuf};

use hcl_edit::expr::{Expression, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::Span;

/// One parsed `.tf` file.
pub struct TfFile {
    /// The file's path as findings print it (relative to the repository root for `terraform/`).
    pub name: String,
    /// The source text, for turning spans into line numbers.
    pub text: String,
    /// The parsed body.
    pub body: Body,
}

/// A file that is not valid HCL.
#[derive(Debug)]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: cannot parse HCL: {}",
            self.file, self.line, self.message
        )
    }
}

impl TfFile {
    /// Parses `text`, the contents of the file `name`.
    pub fn parse(name: &str, text: &str) -> Result<TfFile, ParseError> {
        match hcl_edit::parser::parse_body(text) {
            Ok(body) => Ok(TfFile {
                name: name.to_string(),
                text: text.to_string(),
                body,
            }),
            Err(e) => Err(ParseError {
                file: name.to_string(),
                line: e.location().line(),
                message: e.message().to_string(),
            }),
        }
    }

    /// The 1-based line of `item`, or 1 when it carries no span (it always does when parsed).
    pub fn line_of(&self, item: &impl Span) -> usize {
        item.span().map_or(1, |span| self.line_at(span.start))
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_at(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
            + 1
    }
}

/// `terraform/` of this repository.
pub fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform")
}

/// Every directory at or under `root` that holds `.tf` files: each one is a Terraform module.
pub fn module_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let mut has_tf = false;
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
                    todo.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "tf") {
                has_tf = true;
            }
        }
        if has_tf {
            out.push(dir);
        }
    }
    out.sort();
    out
}

/// The `.tf` files of the module in `dir`, as (path relative to the repository root, source),
/// sorted by name.
pub fn module_sources(dir: &Path) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "tf"))
        .map(|p| {
            let name = p.strip_prefix(root).unwrap_or(&p).display().to_string();
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (name, text)
        })
        .collect();
    files.sort();
    files
}

/// Label `i` of `block`.
pub fn label(block: &Block, i: usize) -> Option<&str> {
    block.labels.get(i).map(|l| l.as_str())
}

/// The value of attribute `name` of `body`.
pub fn attr<'a>(body: &'a Body, name: &str) -> Option<&'a Expression> {
    body.get_attribute(name).map(|a| &a.value)
}

/// The first block `kind { ... }` of `body`.
pub fn block<'a>(body: &'a Body, kind: &str) -> Option<&'a Block> {
    body.blocks().find(|b| b.ident.as_str() == kind)
}

/// The text of a plain string literal (no interpolation), such as `"TRIM_HORIZON"`.
pub fn string_literal(expr: &Expression) -> Option<&str> {
    match expr {
        Expression::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// `NAME` when `expr` is exactly `RTYPE.NAME.ATTR`, such as `oci_streaming_stream.data.id`
/// (an indexed reference such as `RTYPE.NAME[0].ATTR` is not).
pub fn resource_ref<'a>(expr: &'a Expression, rtype: &str, attr: &str) -> Option<&'a str> {
    let Expression::Traversal(t) = expr else {
        return None;
    };
    let Expression::Variable(root) = &t.expr else {
        return None;
    };
    match t.operators.iter().map(|op| op.value()).collect::<Vec<_>>()[..] {
        [TraversalOperator::GetAttr(name), TraversalOperator::GetAttr(a)]
            if root.as_str() == rtype && a.as_str() == attr =>
        {
            Some(name.as_str())
        }
        _ => None,
    }
}

/// The source text of `expr` without its surrounding whitespace and comments.
pub fn source_text(expr: &Expression) -> String {
    let mut bare = expr.clone();
    hcl_edit::Decorate::decor_mut(&mut bare).clear();
    bare.to_string().trim().to_string()
}
