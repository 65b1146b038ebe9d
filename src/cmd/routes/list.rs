//! `datasync routes list`: the routes as a table, or their JSON form (what `terraform/`'s
//! `routes` variable takes and the functions read).

use std::fmt::Write as _;
use std::process::ExitCode;

use datasync_core::routes::{RouteDef, RouteSet};

use super::RoutesSource;

/// Lists the routes.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints one line per route: its name, operation, target, the Vault secret it sends (its name, never
its value), its static headers' names, and which programs it has. --json prints the route set's JSON
form instead: the value of terraform/'s `routes` variable and the object the functions read.

Examples:
  datasync routes list --config datasync.toml
  datasync routes list --config datasync.toml --json > routes.json
  datasync routes list --data-dir .datasync")]
pub struct Args {
    #[command(flatten)]
    pub source: RoutesSource,
    /// Print the JSON form (`{\"routes\":[...]}`) instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Prints the routes.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (set, from) = args.source.load()?;
    if args.json {
        println!("{}", set.to_json());
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&set, &from));
    Ok(ExitCode::SUCCESS)
}

/// The routes of `set` as aligned columns.
fn table(set: &RouteSet, from: &str) -> String {
    let mut out = String::new();
    let names = set.names();
    let _ = writeln!(out, "{} route(s) from {from}", names.len());
    if names.is_empty() {
        return out;
    }
    let rows: Vec<[String; 6]> = names
        .iter()
        .filter_map(|name| set.get(name))
        .map(|route| row(route.def()))
        .collect();
    let header = [
        "name",
        "operation",
        "target",
        "secret",
        "headers",
        "programs",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(l, "{cell:<w$}  ");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header.map(str::to_owned));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    out
}

/// One route's cells: the secret's name and header, header names, and program names.
fn row(def: &RouteDef) -> [String; 6] {
    let dash = || "-".to_owned();
    let secret = def.vault_secret.as_ref().map_or_else(dash, |s| {
        format!(
            "{s} (in {})",
            def.vault_secret_header
                .as_deref()
                .unwrap_or("Authorization")
        )
    });
    let headers: Vec<&str> = def.headers.keys().map(String::as_str).collect();
    let programs: Vec<&str> = [
        ("filter", &def.filter),
        ("transform", &def.transform),
        ("key", &def.key),
        ("path", &def.path),
    ]
    .iter()
    .filter(|(_, p)| p.is_some())
    .map(|(n, _)| *n)
    .collect();
    [
        def.name.clone(),
        def.operation.clone().unwrap_or_else(|| "POST".to_owned()),
        def.target.clone(),
        secret,
        if headers.is_empty() {
            dash()
        } else {
            headers.join(",")
        },
        if programs.is_empty() {
            dash()
        } else {
            programs.join(",")
        },
    ]
}
