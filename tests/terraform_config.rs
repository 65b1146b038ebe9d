//! `terraform/` against the functions' configuration contract.
//!
//! The functions read the keys in `datasync_core::function_config::KEYS`; on OCI they arrive from
//! the Functions application's (and each function's) `config` map. These tests read the `.tf`
//! files (a small HCL reader below, no Terraform, no Python, no network) and check that:
//! - the union of every `config` map in `oci_functions_application` and `oci_functions_function`
//!   is exactly the exported key set, and a function's own `config` holds only keys it reads;
//! - every stream the functions can route a failure to (keys ending in `_error_stream_ocid`, and
//!   `dead_letter_stream_ocid`) is set from an `oci_streaming_stream` resource that exists and that
//!   a Service Connector archives to Object Storage, each under its own prefix;
//! - the data stream feeds the process function through a connector that starts at TRIM_HORIZON.
//!
//! Each failure names the key, stream or connector at fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use datasync_core::function_config::{keys_for, Function, KEYS};

// ------------------------------------------------------------------------------------------------
// A small HCL reader: enough of the native syntax for attributes, blocks and literal maps.
// ------------------------------------------------------------------------------------------------

/// One entry of an HCL body.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// `name = value`; `value` is the expression's source text, trimmed.
    Attr { name: String, value: String },
    /// `kind "label" ... { body }`; `body` is the source text between the braces.
    Block {
        kind: String,
        labels: Vec<String>,
        body: String,
    },
}

/// Index just past the string literal starting at `i` (`s[i] == b'"'`), skipping `${...}`
/// interpolations (which may hold strings of their own) and `$${` / `%%{` escapes.
fn skip_string(s: &[u8], i: usize) -> Result<usize, String> {
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'\\' => j += 2,
            b'"' => return Ok(j + 1),
            b'$' | b'%' if s.get(j + 1) == Some(&s[j]) && s.get(j + 2) == Some(&b'{') => j += 3,
            b'$' | b'%' if s.get(j + 1) == Some(&b'{') => j = skip_group(s, j + 1)?,
            b'\n' => return Err(format!("unterminated string at byte {i}")),
            _ => j += 1,
        }
    }
    Err(format!("unterminated string at byte {i}"))
}

/// Index just past the bracketed group opening at `i` (`{`, `[` or `(`), skipping strings.
fn skip_group(s: &[u8], i: usize) -> Result<usize, String> {
    let mut stack = Vec::new();
    let mut j = i;
    while j < s.len() {
        match s[j] {
            b'"' => {
                j = skip_string(s, j)?;
                continue;
            }
            b'{' => stack.push(b'}'),
            b'[' => stack.push(b']'),
            b'(' => stack.push(b')'),
            c @ (b'}' | b']' | b')') => {
                if stack.pop() != Some(c) {
                    return Err(format!("unbalanced '{}' at byte {j}", c as char));
                }
                if stack.is_empty() {
                    return Ok(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    Err(format!("unclosed bracket opened at byte {i}"))
}

/// If a heredoc (`<<ID` or `<<-ID`) starts at `i`, the index just past its closing line.
fn skip_heredoc(s: &[u8], i: usize) -> Option<usize> {
    if !s[i..].starts_with(b"<<") {
        return None;
    }
    let mut j = i + 2;
    if s.get(j) == Some(&b'-') {
        j += 1;
    }
    let start = j;
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
        j += 1;
    }
    if j == start || s.get(j) != Some(&b'\n') {
        return None;
    }
    let marker = &s[start..j];
    let mut line_start = j + 1;
    while line_start < s.len() {
        let line_end = s[line_start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(s.len(), |p| line_start + p);
        if s[line_start..line_end].trim_ascii() == marker {
            return Some(line_end);
        }
        line_start = line_end + 1;
    }
    None
}

/// The source with `#`, `//` and `/* */` comments blanked out (newlines kept).
fn strip_comments(src: &str) -> Result<String, String> {
    let s = src.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'"' {
            let end = skip_string(s, i)?;
            out.extend_from_slice(&s[i..end]);
            i = end;
        } else if let Some(end) = skip_heredoc(s, i) {
            out.extend_from_slice(&s[i..end]);
            i = end;
        } else if s[i] == b'#' || s[i..].starts_with(b"//") {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if s[i..].starts_with(b"/*") {
            let end = s[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map(|p| i + 2 + p + 2)
                .ok_or("unterminated /* comment")?;
            out.extend(
                s[i..end]
                    .iter()
                    .map(|&c| if c == b'\n' { b'\n' } else { b' ' }),
            );
            i = end;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// The items of a body (a whole file, a block's body, or a map's inside). Expects comment-free text.
fn parse_body(src: &str) -> Result<Vec<Item>, String> {
    let s = src.as_bytes();
    let mut items = Vec::new();
    let mut i = 0;
    let skip_blank = |i: &mut usize, newlines: bool| {
        while *i < s.len()
            && (s[*i] == b' '
                || s[*i] == b'\t'
                || s[*i] == b'\r'
                || (newlines && (s[*i] == b'\n' || s[*i] == b',')))
        {
            *i += 1;
        }
    };
    let read_name = |i: &mut usize| -> Result<String, String> {
        if s[*i] == b'"' {
            let end = skip_string(s, *i)?;
            let name = src[*i + 1..end - 1].to_string();
            *i = end;
            return Ok(name);
        }
        let start = *i;
        while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_' || s[*i] == b'-') {
            *i += 1;
        }
        if *i == start {
            let line = src[..start].matches('\n').count() + 1;
            return Err(format!("unexpected '{}' on line {line}", s[start] as char));
        }
        Ok(src[start..*i].to_string())
    };
    loop {
        skip_blank(&mut i, true);
        if i >= s.len() {
            return Ok(items);
        }
        let name = read_name(&mut i)?;
        skip_blank(&mut i, false);
        let is_assign =
            (s.get(i) == Some(&b'=') && s.get(i + 1) != Some(&b'=')) || s.get(i) == Some(&b':');
        if is_assign {
            i += 1;
            skip_blank(&mut i, false);
            let start = i;
            if let Some(end) = skip_heredoc(s, i) {
                i = end;
            } else {
                while i < s.len() && s[i] != b'\n' && s[i] != b',' {
                    i = match s[i] {
                        b'"' => skip_string(s, i)?,
                        b'{' | b'[' | b'(' => skip_group(s, i)?,
                        _ => i + 1,
                    };
                }
            }
            items.push(Item::Attr {
                name,
                value: src[start..i].trim().to_string(),
            });
        } else {
            let mut labels = Vec::new();
            while s.get(i) != Some(&b'{') {
                if i >= s.len() || s[i] == b'\n' {
                    return Err(format!("block {name} has no body"));
                }
                labels.push(read_name(&mut i)?);
                skip_blank(&mut i, false);
            }
            let end = skip_group(s, i)?;
            items.push(Item::Block {
                kind: name,
                labels,
                body: src[i + 1..end - 1].to_string(),
            });
            i = end;
        }
    }
}

/// The value of attribute `name` in `items`.
fn attr<'a>(items: &'a [Item], name: &str) -> Option<&'a str> {
    items.iter().find_map(|it| match it {
        Item::Attr { name: n, value } if n == name => Some(value.as_str()),
        _ => None,
    })
}

/// The parsed body of the first block of kind `kind` in `items`.
fn block(items: &[Item], kind: &str) -> Result<Option<Vec<Item>>, String> {
    items
        .iter()
        .find_map(|it| match it {
            Item::Block { kind: k, body, .. } if k == kind => Some(parse_body(body)),
            _ => None,
        })
        .transpose()
}

/// The entries of a literal map `{ k = v ... }`, in order.
fn parse_map(value: &str) -> Result<Vec<(String, String)>, String> {
    let inner = value
        .trim()
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .ok_or_else(|| format!("not a literal map: {value}"))?;
    parse_body(inner)?
        .into_iter()
        .map(|it| match it {
            Item::Attr { name, value } => Ok((name, value)),
            Item::Block { kind, .. } => Err(format!("unexpected block {kind} in a map")),
        })
        .collect()
}

/// `"text"` → `text` for a plain string literal.
fn unquote(value: &str) -> Option<&str> {
    value
        .strip_prefix('"')?
        .strip_suffix('"')
        .filter(|v| !v.contains("${"))
}

/// `oci_streaming_stream.NAME.id` → `NAME`.
fn stream_ref(value: &str) -> Option<&str> {
    let name = value
        .trim()
        .strip_prefix("oci_streaming_stream.")?
        .strip_suffix(".id")?;
    name.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
        .then_some(name)
}

/// A `resource` block.
struct Resource {
    rtype: String,
    name: String,
    file: String,
    body: Vec<Item>,
}

impl Resource {
    fn address(&self) -> String {
        format!("{}.{} ({})", self.rtype, self.name, self.file)
    }
}

/// Every `resource` of the given `(file name, source)` pairs.
fn resources(files: &[(String, String)]) -> Result<Vec<Resource>, String> {
    let mut out = Vec::new();
    for (file, src) in files {
        let items = parse_body(&strip_comments(src).map_err(|e| format!("{file}: {e}"))?)
            .map_err(|e| format!("{file}: {e}"))?;
        for item in items {
            if let Item::Block { kind, labels, body } = item {
                if kind == "resource" && labels.len() == 2 {
                    let body = parse_body(&body)
                        .map_err(|e| format!("{file}: {}.{}: {e}", labels[0], labels[1]))?;
                    out.push(Resource {
                        rtype: labels[0].clone(),
                        name: labels[1].clone(),
                        file: file.clone(),
                        body,
                    });
                }
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------------------------------------
// The checks
// ------------------------------------------------------------------------------------------------

/// Whether the functions can route a failed message to the stream this key names.
fn is_failure_stream_key(name: &str) -> bool {
    name.ends_with("_error_stream_ocid") || name == "dead_letter_stream_ocid"
}

/// The function a `oci_functions_function` resource deploys: its literal `display_name`, else
/// its resource name.
fn function_of(res: &Resource) -> Option<Function> {
    let display = attr(&res.body, "display_name").and_then(unquote);
    Function::ALL
        .into_iter()
        .find(|f| display == Some(f.name()))
        .or_else(|| Function::ALL.into_iter().find(|f| res.name == f.name()))
}

/// A connector's source stream resource name, cursor kind, target kind and target body.
struct Connector<'a> {
    res: &'a Resource,
    source_stream: Option<String>,
    cursor: Option<String>,
    target_kind: Option<String>,
    target: Vec<Item>,
}

fn connectors(all: &[Resource]) -> Result<Vec<Connector<'_>>, String> {
    all.iter()
        .filter(|r| r.rtype == "oci_sch_service_connector")
        .map(|res| {
            let source = block(&res.body, "source")?.unwrap_or_default();
            let cursor = block(&source, "cursor")?
                .and_then(|c| attr(&c, "kind").and_then(unquote).map(str::to_string));
            let target = block(&res.body, "target")?.unwrap_or_default();
            Ok(Connector {
                res,
                source_stream: attr(&source, "stream_id")
                    .and_then(stream_ref)
                    .map(str::to_string),
                cursor,
                target_kind: attr(&target, "kind").and_then(unquote).map(str::to_string),
                target,
            })
        })
        .collect()
}

/// Every problem found in `files` (the `.tf` files of one module), as messages for people.
fn check(files: &[(String, String)]) -> Vec<String> {
    let all = match resources(files) {
        Ok(all) => all,
        Err(e) => return vec![format!("cannot read the Terraform: {e}")],
    };
    let mut problems = Vec::new();
    let exported: BTreeSet<&str> = KEYS.iter().map(|k| k.name).collect();

    // --- configuration maps -------------------------------------------------------------------
    // key -> (value expression, where it is set)
    let mut set: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let apps: Vec<&Resource> = all
        .iter()
        .filter(|r| r.rtype == "oci_functions_application")
        .collect();
    if apps.len() != 1 {
        problems.push(format!(
            "expected exactly one oci_functions_application, found {}",
            apps.len()
        ));
    }
    for res in all
        .iter()
        .filter(|r| r.rtype == "oci_functions_application" || r.rtype == "oci_functions_function")
    {
        let Some(value) = attr(&res.body, "config") else {
            continue;
        };
        let entries = match parse_map(value) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(format!(
                    "{}: config must be a literal map so it can be checked: {e}",
                    res.address()
                ));
                continue;
            }
        };
        let function = (res.rtype == "oci_functions_function").then(|| function_of(res));
        for (key, value) in entries {
            if let Some(function) = function {
                match function {
                    None => problems.push(format!("{}: cannot tell which function this is, so its config key {key} cannot be checked", res.address())),
                    Some(f) if !keys_for(f).any(|k| k.name == key) => problems.push(format!(
                        "{}: config key {key} is not read by the {} function (keys_for({:?}) in crates/core/src/function_config.rs)",
                        res.address(),
                        f.name(),
                        f
                    )),
                    Some(_) => {}
                }
            }
            let entries = set.entry(key).or_default();
            if entries.iter().any(|(_, at)| *at == res.address()) {
                problems.push(format!(
                    "{}: config key {} is set twice",
                    res.address(),
                    entries[0].0
                ));
            }
            entries.push((value, res.address()));
        }
    }
    for key in &exported {
        if !set.contains_key(*key) {
            problems.push(format!("missing config key {key}: the functions read it (crates/core/src/function_config.rs) but no config map in terraform/ sets it"));
        }
    }
    for (key, at) in &set {
        if !exported.contains(key.as_str()) {
            let at: Vec<&str> = at.iter().map(|(_, a)| a.as_str()).collect();
            problems.push(format!(
                "extra config key {key} in {}: no function reads it (add it to KEYS in crates/core/src/function_config.rs, or remove it)",
                at.join(", ")
            ));
        }
    }

    // --- failure streams are real streams and archived -------------------------------------
    let streams: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.rtype == "oci_streaming_stream")
        .map(|r| r.name.as_str())
        .collect();
    let connectors = match connectors(&all) {
        Ok(c) => c,
        Err(e) => {
            problems.push(format!("cannot read the connectors: {e}"));
            return problems;
        }
    };
    let mut prefixes: BTreeMap<String, String> = BTreeMap::new();
    for c in connectors
        .iter()
        .filter(|c| c.target_kind.as_deref() == Some("objectStorage"))
    {
        let prefix = attr(&c.target, "object_name_prefix")
            .unwrap_or("(none)")
            .to_string();
        if let Some(other) = prefixes.insert(prefix.clone(), c.res.address()) {
            problems.push(format!(
                "{} and {other} archive under the same object_name_prefix {prefix}",
                c.res.address()
            ));
        }
    }
    let stream_of = |key: &str| -> Result<String, String> {
        let (value, at) = set
            .get(key)
            .and_then(|v| v.first())
            .ok_or_else(|| format!("{key} is not set"))?;
        let name = stream_ref(value).ok_or_else(|| {
            format!("{key} in {at} is set to {value}, not to an oci_streaming_stream.<name>.id")
        })?;
        if !streams.contains(name) {
            return Err(format!(
                "{key} in {at} names oci_streaming_stream.{name}, which is not declared"
            ));
        }
        Ok(name.to_string())
    };
    for key in KEYS
        .iter()
        .map(|k| k.name)
        .filter(|k| is_failure_stream_key(k))
    {
        let stream = match stream_of(key) {
            Ok(s) => s,
            Err(e) => {
                problems.push(format!("failure stream {e}"));
                continue;
            }
        };
        let archived = connectors.iter().any(|c| {
            c.source_stream.as_deref() == Some(stream.as_str())
                && c.target_kind.as_deref() == Some("objectStorage")
                && attr(&c.target, "bucket").is_some()
                && attr(&c.target, "object_name_prefix").is_some()
        });
        if !archived {
            problems.push(format!(
                "unarchived failure stream: {key} routes to oci_streaming_stream.{stream}, but no oci_sch_service_connector copies it to Object Storage (source stream_id = oci_streaming_stream.{stream}.id, target kind = \"objectStorage\" with a bucket and an object_name_prefix)"
            ));
        }
    }

    // --- the data stream feeds process from the beginning ----------------------------------
    if let Ok(data) = stream_of("data_stream_ocid") {
        let process: Vec<String> = all
            .iter()
            .filter(|r| {
                r.rtype == "oci_functions_function" && function_of(r) == Some(Function::Process)
            })
            .map(|r| format!("oci_functions_function.{}.id", r.name))
            .collect();
        let feeds = connectors.iter().find(|c| {
            c.source_stream.as_deref() == Some(data.as_str())
                && c.target_kind.as_deref() == Some("functions")
                && attr(&c.target, "function_id").is_some_and(|f| process.iter().any(|p| p == f))
        });
        match feeds {
            None => problems.push(format!("no connector delivers oci_streaming_stream.{data} (data_stream_ocid) to the process function")),
            Some(c) if c.cursor.as_deref() != Some("TRIM_HORIZON") => problems.push(format!(
                "{} reads the data stream from {:?}: use cursor kind TRIM_HORIZON so nothing published before the connector exists is skipped",
                c.res.address(),
                c.cursor
            )),
            Some(_) => {}
        }
    }
    problems
}

/// The `.tf` files of `terraform/`, by file name.
fn terraform_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

// ------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------

#[test]
fn terraform_sets_exactly_the_exported_keys_and_archives_every_failure_stream() {
    let files = terraform_files();
    assert!(!files.is_empty(), "terraform/ has no .tf files");
    let problems = check(&files);
    assert!(
        problems.is_empty(),
        "terraform/ does not match crates/core/src/function_config.rs:\n  - {}",
        problems.join("\n  - ")
    );
}

/// A minimal module that passes, built from KEYS so it follows the contract as it grows.
fn good_module() -> String {
    let mut config = String::new();
    let mut streams = String::new();
    let mut archives = String::new();
    for key in KEYS {
        if is_failure_stream_key(key.name) || key.name == "data_stream_ocid" {
            let stream = key.name.trim_end_matches("_ocid").to_lowercase();
            config.push_str(&format!(
                "    {} = oci_streaming_stream.{stream}.id\n",
                key.name
            ));
            streams.push_str(&format!("resource \"oci_streaming_stream\" \"{stream}\" {{\n  name = \"{stream}\" # a comment {{\n  partitions = 1\n}}\n"));
            if key.name != "data_stream_ocid" {
                archives.push_str(&format!(
                    "resource \"oci_sch_service_connector\" \"archive_{stream}\" {{\n  source {{\n    kind = \"streaming\"\n    stream_id = oci_streaming_stream.{stream}.id\n  }}\n  target {{\n    kind = \"objectStorage\"\n    bucket = oci_objectstorage_bucket.b.name\n    object_name_prefix = \"{stream}/\"\n  }}\n}}\n"
                ));
            }
        } else {
            config.push_str(&format!("    \"{}\" = \"${{var.x}}-{{}}\"\n", key.name));
        }
    }
    format!(
        "/* block comment }} */\nresource \"oci_functions_application\" \"app\" {{\n  display_name = \"app\"\n  config = {{\n{config}  }}\n}}\n\
         resource \"oci_functions_function\" \"p\" {{\n  display_name = \"process\"\n  memory_in_mbs = \"256\"\n}}\n\
         resource \"oci_sch_service_connector\" \"data\" {{\n  source {{\n    kind = \"streaming\"\n    stream_id = oci_streaming_stream.data_stream.id\n    cursor {{\n      kind = \"TRIM_HORIZON\"\n    }}\n  }}\n  target {{\n    kind = \"functions\"\n    function_id = oci_functions_function.p.id\n  }}\n}}\n\
         {streams}{archives}"
    )
}

fn module(src: String) -> Vec<(String, String)> {
    vec![("main.tf".to_string(), src)]
}

#[test]
fn the_inline_module_passes() {
    let problems = check(&module(good_module()));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn a_missing_key_is_named() {
    let src = good_module().replace("    \"max_attempts\" = \"${var.x}-{}\"\n", "");
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("missing config key max_attempts")),
        "{problems:#?}"
    );
}

#[test]
fn an_extra_key_is_named() {
    let src = good_module().replace(
        "  config = {\n",
        "  config = {\n    compartment_ocid = var.compartment_ocid\n",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("extra config key compartment_ocid")),
        "{problems:#?}"
    );
}

#[test]
fn an_unarchived_failure_stream_is_named() {
    let src = good_module().replace("kind = \"objectStorage\"\n    bucket = oci_objectstorage_bucket.b.name\n    object_name_prefix = \"dead_letter_stream/\"", "kind = \"notifications\"");
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("unarchived failure stream: dead_letter_stream_ocid")),
        "{problems:#?}"
    );
}

#[test]
fn a_failure_stream_that_is_not_a_declared_stream_is_named() {
    let src = good_module().replace(
        "default_error_stream_ocid = oci_streaming_stream.default_error_stream.id",
        "default_error_stream_ocid = oci_streaming_stream.service_unavailable.id",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("default_error_stream_ocid") && p.contains("not declared")),
        "{problems:#?}"
    );
}

#[test]
fn a_function_config_key_the_function_does_not_read_is_named() {
    let src = good_module().replace(
        "  display_name = \"process\"\n",
        "  display_name = \"process\"\n  config = {\n    data_stream_ocid = \"x\"\n  }\n",
    );
    let problems = check(&module(src));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("config key data_stream_ocid is not read by the process function")),
        "{problems:#?}"
    );
}

#[test]
fn the_data_connector_must_start_at_trim_horizon() {
    let src = good_module().replace("\"TRIM_HORIZON\"", "\"LATEST\"");
    let problems = check(&module(src));
    assert!(
        problems.iter().any(|p| p.contains("TRIM_HORIZON")),
        "{problems:#?}"
    );
}

#[test]
fn the_reader_handles_strings_interpolation_heredocs_and_comments() {
    let src = "a = \"x # not a comment ${f(\"}\")} $${literal}\" # comment\n\
               b = [1, { c = 2 }] // comment\n\
               d = <<EOT\n  { unbalanced\nEOT\n\
               blk \"l1\" l2 {\n  inner = 1\n}\n";
    let items = parse_body(&strip_comments(src).unwrap()).unwrap();
    assert_eq!(
        attr(&items, "a"),
        Some("\"x # not a comment ${f(\"}\")} $${literal}\"")
    );
    assert_eq!(attr(&items, "b"), Some("[1, { c = 2 }]"));
    assert!(attr(&items, "d").unwrap().starts_with("<<EOT"));
    assert!(
        matches!(&items[3], Item::Block { kind, labels, .. } if kind == "blk" && labels == &["l1", "l2"])
    );
    assert_eq!(
        parse_map("{ k1 = 1, \"k2\" : \"v\" }").unwrap(),
        vec![("k1".into(), "1".into()), ("k2".into(), "\"v\"".into())]
    );
    assert_eq!(
        stream_ref("oci_streaming_stream.dead_letter.id"),
        Some("dead_letter")
    );
    assert_eq!(stream_ref("oci_streaming_stream.s[0].id"), None);
}
