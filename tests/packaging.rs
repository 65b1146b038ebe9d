//! The functions' packaging against Cargo and Terraform, without Docker: each
//! `functions/<name>/func.yaml`, each `functions/<name>/Dockerfile`, the root `func.yaml`,
//! `.dockerignore`, the workspace manifests and `terraform/variables.tf` are read as plain text
//! and checked to agree:
//!
//! - every function of `function_config::Function::ALL` has a folder, a workspace member, a
//!   package and a binary of its name, a `func.yaml` naming it, and a Dockerfile building that
//!   package (`cargo build --release --locked -p <name>`) and copying exactly that binary into
//!   a second, minimal stage that runs it as a non-root user;
//! - `func.yaml` repeats the root `func.yaml`'s shared values (schema 20180708, version = the
//!   workspace version, runtime docker), and its memory and timeout are legal on OCI and equal
//!   Terraform's defaults;
//! - the builder image is a pinned Rust release no older than the workspace's `rust-version`;
//! - the build context is the repository root, as `terraform/README.md` documents, and
//!   `.dockerignore` keeps `target/` and `.git/` out of it.
//!
//! Each failure names the file and the value at fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datasync_core::function_config::Function;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key: value` lines of a flat YAML file (comments and blank lines skipped). Nested or list
/// values are refused: our func.yaml files stay flat so this reader (and a person) can check
/// them.
fn flat_yaml(path: &Path) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (n, line) in read(path).lines().enumerate() {
        let line = line.split(" #").next().unwrap_or_default().trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        assert!(
            !line.starts_with(' ') && !line.starts_with('-'),
            "{}:{}: nested YAML is not expected here: {line:?}",
            path.display(),
            n + 1
        );
        let (key, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{}:{}: not `key: value`", path.display(), n + 1));
        let value = value.trim().trim_matches('"').trim_matches('\'').to_owned();
        assert!(
            !value.is_empty(),
            "{}:{}: {key} has no value",
            path.display(),
            n + 1
        );
        assert!(
            map.insert(key.trim().to_owned(), value).is_none(),
            "{}: {key} twice",
            path.display()
        );
    }
    map
}

/// The value of `key = "..."` (or a bare value) in the `[section]` of a TOML manifest.
fn toml_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        if current != section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim() == key {
                return Some(v.trim().trim_matches('"').to_owned());
            }
        }
    }
    None
}

/// Every `name = "..."` of the `[[bin]]` tables of a manifest.
fn bin_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin {
            if let Some(v) = line.strip_prefix("name") {
                let v = v.trim_start();
                if let Some(v) = v.strip_prefix('=') {
                    names.push(v.trim().trim_matches('"').to_owned());
                }
            }
        }
    }
    names
}

/// The workspace members listed in the root manifest.
fn workspace_members(text: &str) -> Vec<String> {
    let start = text.find("members").expect("[workspace] members");
    let open = start + text[start..].find('[').unwrap();
    let close = open + text[open..].find(']').unwrap();
    text[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// `{ populate = 256, process = 512, retry = 256 }`: the default of a Terraform object variable.
fn terraform_default(variables: &str, variable: &str) -> BTreeMap<String, u64> {
    let start = variables
        .find(&format!("variable \"{variable}\""))
        .unwrap_or_else(|| panic!("terraform/variables.tf has no variable {variable}"));
    let block = &variables[start..];
    let line = block
        .lines()
        .find(|l| l.trim_start().starts_with("default"))
        .unwrap_or_else(|| panic!("{variable} has no default"));
    let inner = line
        .split_once('{')
        .and_then(|(_, r)| r.split_once('}'))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{variable}: default is not an object: {line}"));
    inner
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let full = std::mem::take(&mut pending);
        let (op, args) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        out.push((op.to_ascii_uppercase(), args.trim().to_owned()));
    }
    out
}

fn version_tuple(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[test]
fn func_yaml_dockerfiles_and_cargo_agree() {
    let root = root();
    let manifest = read(&root.join("Cargo.toml"));
    let version = toml_value(&manifest, "workspace.package", "version").expect("workspace version");
    let msrv = toml_value(&manifest, "workspace.package", "rust-version").expect("rust-version");
    let members = workspace_members(&manifest);
    let variables = read(&root.join("terraform/variables.tf"));
    let memory = terraform_default(&variables, "function_memory_mb");
    let timeout = terraform_default(&variables, "function_timeout_seconds");
    let shared = shared_func_yaml(&root, &version);
    only_the_three_functions(&root);
    for function in Function::ALL {
        let name = function.name();
        let dir = root.join("functions").join(name);
        cargo_package(name, &dir, &members);
        function_func_yaml(name, &dir, &shared, &memory, &timeout);
        dockerfile(name, &dir, &msrv);
    }
}

/// The root func.yaml: the shared values, no function of its own.
fn shared_func_yaml(root: &Path, version: &str) -> BTreeMap<String, String> {
    // The shared values.
    let shared = flat_yaml(&root.join("func.yaml"));
    assert!(
        !shared.contains_key("name"),
        "func.yaml (root) must not name a function: it is the shared template, not a function"
    );
    assert_eq!(
        shared.get("schema_version").map(String::as_str),
        Some("20180708")
    );
    assert_eq!(shared.get("runtime").map(String::as_str), Some("docker"));
    assert_eq!(
        shared.get("version"),
        Some(&version.to_owned()),
        "func.yaml (root): version must be the workspace version"
    );
    assert!(
        !root.join("Dockerfile").exists(),
        "a root Dockerfile would make the root func.yaml look deployable"
    );

    shared
}

/// No function folder beyond the three.
fn only_the_three_functions(root: &Path) {
    let mut folders: Vec<String> = std::fs::read_dir(root.join("functions"))
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type()
                .ok()?
                .is_dir()
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    folders.sort();
    let mut expected: Vec<String> = Function::ALL.iter().map(|f| f.name().to_owned()).collect();
    expected.sort();
    assert_eq!(
        folders, expected,
        "functions/ holds exactly the three functions"
    );
}

/// The function's Cargo package: a workspace member with its binary.
fn cargo_package(name: &str, dir: &Path, members: &[String]) {
    let what = |file: &str| format!("functions/{name}/{file}");
    // Cargo: member, package, binary.
    assert!(
        members.iter().any(|m| m == &format!("functions/{name}")),
        "Cargo.toml: functions/{name} is not a workspace member"
    );
    let cargo = read(&dir.join("Cargo.toml"));
    assert_eq!(
        toml_value(&cargo, "package", "name").as_deref(),
        Some(name),
        "{}: package name",
        what("Cargo.toml")
    );
    let bins = bin_names(&cargo);
    assert!(
        bins.iter().any(|b| b == name) || (bins.is_empty() && dir.join("src/main.rs").exists()),
        "{}: no binary named {name} (found {bins:?})",
        what("Cargo.toml")
    );
}

/// The function's func.yaml: the shared values, its name, and the Terraform's memory and
/// timeout.
fn function_func_yaml(
    name: &str,
    dir: &Path,
    shared: &BTreeMap<String, String>,
    memory: &BTreeMap<String, u64>,
    timeout: &BTreeMap<String, u64>,
) {
    let what = |file: &str| format!("functions/{name}/{file}");
    // func.yaml.
    let ff = flat_yaml(&dir.join("func.yaml"));
    assert_eq!(
        ff.get("name").map(String::as_str),
        Some(name),
        "{}",
        what("func.yaml")
    );
    for (key, value) in shared {
        assert_eq!(
            ff.get(key),
            Some(value),
            "{}: {key} differs from the root func.yaml",
            what("func.yaml")
        );
    }
    let mem: u64 = ff["memory"].parse().expect("memory in MB");
    assert!(
        [128, 256, 512, 1024, 2048, 3072].contains(&mem),
        "{}: memory {mem} is not an OCI size",
        what("func.yaml")
    );
    assert_eq!(
        Some(&mem),
        memory.get(name),
        "{}: memory differs from terraform function_memory_mb",
        what("func.yaml")
    );
    let to: u64 = ff["timeout"].parse().expect("timeout in seconds");
    assert!(
        (5..=300).contains(&to),
        "{}: timeout {to}",
        what("func.yaml")
    );
    assert_eq!(
        Some(&to),
        timeout.get(name),
        "{}: timeout differs from terraform function_timeout_seconds",
        what("func.yaml")
    );
    let known = [
        "schema_version",
        "name",
        "version",
        "runtime",
        "memory",
        "timeout",
    ];
    for key in ff.keys() {
        assert!(
            known.contains(&key.as_str()),
            "{}: unexpected key {key}",
            what("func.yaml")
        );
    }
}

/// The function's Dockerfile: a pinned Rust builder that builds the function from the
/// repository root, and a minimal runtime stage running only its binary as a non-root user.
fn dockerfile(name: &str, dir: &Path, msrv: &str) {
    let what = |file: &str| format!("functions/{name}/{file}");
    let steps = instructions(&read(&dir.join("Dockerfile")));
    let froms: Vec<&String> = steps
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "{}: two stages expected, found {froms:?}",
        what("Dockerfile")
    );
    let builder: Vec<&str> = froms[0].split_whitespace().collect();
    let (image, stage) = match builder.as_slice() {
        [image, as_, stage] if as_.eq_ignore_ascii_case("as") => (*image, *stage),
        other => panic!(
            "{}: first FROM must be `<rust image> AS <stage>`: {other:?}",
            what("Dockerfile")
        ),
    };
    let tag = image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("{}: builder {image} is not rust:", what("Dockerfile")));
    let rust = tag.split('-').next().unwrap_or_default();
    assert_eq!(
        rust.split('.').count(),
        3,
        "{}: the Rust builder must be pinned to a release (x.y.z), not {tag}",
        what("Dockerfile")
    );
    assert!(
        version_tuple(rust) >= version_tuple(msrv),
        "{}: Rust {rust} is older than the workspace rust-version {msrv}",
        what("Dockerfile")
    );
    stage_steps(name, &steps, &froms, stage);
}

/// The steps of the function's Dockerfile: the build stage (`stage`) builds the function from
/// the whole context; the runtime stage is minimal, copies only the binary and runs it, not as
/// root, with CA certificates.
fn stage_steps(name: &str, steps: &[(String, String)], froms: &[&String], stage: &str) {
    let what = |file: &str| format!("functions/{name}/{file}");
    let runtime = froms[1].split_whitespace().next().unwrap_or_default();
    assert!(
        !runtime.starts_with("rust:")
            && (runtime.contains("slim") || runtime.contains("distroless")),
        "{}: the runtime stage must be minimal, not {runtime}",
        what("Dockerfile")
    );
    let second_stage = steps.iter().rposition(|(op, _)| op == "FROM").unwrap();
    let (build_steps, run_steps) = steps.split_at(second_stage);

    let workdir = build_steps
        .iter()
        .rev()
        .find(|(op, _)| op == "WORKDIR")
        .map(|(_, a)| a.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| panic!("{}: the build stage sets no WORKDIR", what("Dockerfile")));
    assert!(
        build_steps.iter().any(|(op, a)| op == "COPY" && a == ". ."),
        "{}: the build stage must COPY the whole context (the repository root)",
        what("Dockerfile")
    );
    let build = format!("cargo build --release --locked -p {name}");
    assert!(
        build_steps
            .iter()
            .any(|(op, a)| op == "RUN" && a.contains(&build)),
        "{}: no `{build}`",
        what("Dockerfile")
    );

    let copies: Vec<&String> = run_steps
        .iter()
        .filter(|(op, _)| op == "COPY" || op == "ADD")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(
        copies.len(),
        1,
        "{}: the runtime stage copies only the binary: {copies:?}",
        what("Dockerfile")
    );
    let parts: Vec<&str> = copies[0].split_whitespace().collect();
    let binary = format!("{workdir}/target/release/{name}");
    let dest = match parts.as_slice() {
        [from, src, dest] if *from == format!("--from={stage}") && *src == binary => *dest,
        other => panic!(
            "{}: expected `COPY --from={stage} {binary} <dest>`, found {other:?}",
            what("Dockerfile")
        ),
    };
    let entry = run_steps
        .iter()
        .find(|(op, _)| op == "ENTRYPOINT")
        .map(|(_, a)| a.as_str())
        .unwrap_or_else(|| panic!("{}: no ENTRYPOINT", what("Dockerfile")));
    assert_eq!(
        entry,
        format!("[\"{dest}\"]"),
        "{}: ENTRYPOINT must run the copied binary",
        what("Dockerfile")
    );
    let user = run_steps
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str())
        .unwrap_or_else(|| {
            panic!(
                "{}: no USER: the function would run as root",
                what("Dockerfile")
            )
        });
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root",
        "{}: USER {user} is root",
        what("Dockerfile")
    );
    assert!(
        run_steps.iter().any(|(_, a)| a.contains("ca-certificates"))
            || runtime.contains("distroless"),
        "{}: the runtime stage has no CA certificates",
        what("Dockerfile")
    );
}

#[test]
fn the_build_context_is_the_repository_root() {
    let root = root();
    let ignore = read(&root.join(".dockerignore"));
    let entries: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", ".git/"] {
        assert!(
            entries.contains(&needed),
            ".dockerignore must exclude {needed}"
        );
    }
    for kept in ["Cargo.toml", "Cargo.lock", "crates/", "functions/", "src/"] {
        assert!(
            !entries.contains(&kept),
            ".dockerignore must not exclude {kept}"
        );
    }
    let manifest = read(&root.join("Cargo.toml"));
    let version = toml_value(&manifest, "workspace.package", "version").unwrap();
    let readme = read(&root.join("functions/README.md"));
    let tf_readme = read(&root.join("terraform/README.md"));
    for (file, text) in [
        ("functions/README.md", &readme),
        ("terraform/README.md", &tf_readme),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains("docker build") && l.contains("-f functions/$f/Dockerfile"))
            .unwrap_or_else(|| {
                panic!("{file}: no `docker build -f functions/$f/Dockerfile ...` line")
            });
        assert!(
            line.trim_end().ends_with(" ."),
            "{file}: the build context must be the repository root: {line}"
        );
        assert!(
            line.contains(&format!(":{version} ")),
            "{file}: the image tag must be the workspace version {version}: {line}"
        );
    }
}
