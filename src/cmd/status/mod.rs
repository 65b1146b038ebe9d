//! `datasync status`: the status of a running stack as tables (or its JSON), and how the
//! operator tools (`send`, `retry`, `status`, `bench --url`) find a running stack.

mod find;
mod render;

use std::process::ExitCode;

use anyhow::Context as _;
use datasync_local::stack::status::Status;

pub use find::{unreachable, Found, Role, StackArgs};
use render::render;

/// Shows the status of a running stack: streams with depth and lag, deliveries per second,
/// failures by class, recent notifications and archived objects.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Reads GET /status of the gateway (no key needed) and prints it as tables; --json prints the JSON.

Examples:
  datasync status
  datasync status --data-dir /tmp/ds --json")]
pub struct Args {
    #[command(flatten)]
    pub stack: StackArgs,
    /// Print the status JSON (`GET /status`) as it is.
    #[arg(long)]
    pub json: bool,
}

/// `GET {gateway}/status` as the stack's [`Status`] document.
///
/// # Errors
/// When the gateway cannot be reached, answers an error, or answers something else.
pub async fn fetch(http: &reqwest::Client, gateway: &str) -> anyhow::Result<Status> {
    let url = format!("{gateway}/status");
    let answer = http
        .get(&url)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| unreachable(gateway, &e))?;
    let status = answer.status();
    let text = answer.text().await?;
    if !status.is_success() {
        anyhow::bail!("GET {url} answered {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| {
        format!("GET {url} did not answer the status document (is this a datasync gateway?)")
    })
}

/// Fetches and prints the status.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let found = args.stack.find(Role::None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let doc = runtime.block_on(fetch(&reqwest::Client::new(), &found.gateway))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", render(&doc));
    }
    Ok(ExitCode::SUCCESS)
}
