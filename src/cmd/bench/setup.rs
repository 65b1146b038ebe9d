//! What the benchmark runs against: a running stack (`--url`, or `--data-dir` of a running
//! `datasync up`), or one it starts in-process.

use std::path::PathBuf;

use datasync_local::stack::{Stack, StackConfig, StackOptions};

use super::probe;
use super::Args;
use crate::cmd::status::{Role, StackArgs};

/// What the load runs against.
pub struct Setup {
    /// The gateway's base URL.
    pub gateway: String,
    /// The source key.
    pub key: String,
    /// The demo target's base URL.
    pub target: String,
    /// The stack, when it runs in this process.
    pub stack: Option<Stack>,
    /// The temporary data directory to remove afterwards.
    pub tmp: Option<PathBuf>,
}

impl Setup {
    /// A running stack when one is named and answers, else one started in-process.
    ///
    /// # Errors
    /// When the stack named by `--url` does not answer, has no demo target, or is not on
    /// this machine; or the in-process stack fails to start.
    /// `allow` adds allow-list entries to a stack started in-process.
    pub async fn find_or_start(
        args: &Args,
        http: &reqwest::Client,
        allow: &[String],
    ) -> anyhow::Result<Self> {
        // A running stack: --url, or --data-dir whose endpoints.json names a gateway that answers.
        let running = match (&args.url, &args.data_dir) {
            (Some(_), _) => true,
            (None, Some(dir)) => dir.join(datasync_local::stack::ENDPOINTS_FILE).exists(),
            (None, None) => false,
        };
        let setup = if running && allow.is_empty() {
            running_stack(args, http).await?
        } else {
            None
        };
        let setup = match setup {
            Some(s) => s,
            None => in_process(args, allow).await?,
        };
        for u in [&setup.gateway, &setup.target] {
            if !is_loopback(u) {
                anyhow::bail!(
                    "{u} is not a loopback address: the benchmark only runs against this machine"
                );
            }
        }
        Ok(setup)
    }

    /// Stops the in-process stack and removes its temporary directory.
    pub async fn finish(self) {
        if let Some(stack) = self.stack {
            stack.shutdown().await;
        }
        if let Some(t) = &self.tmp {
            let _ = std::fs::remove_dir_all(t);
        }
    }
}

/// The running stack `args` name; `None` when `--data-dir`'s stack does not answer (one is
/// then started there).
async fn running_stack(args: &Args, http: &reqwest::Client) -> anyhow::Result<Option<Setup>> {
    let stack_args = StackArgs {
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".datasync")),
        url: args.url.clone(),
        key: args.key.clone(),
    };
    let found = stack_args.find(Role::Source)?;
    if !is_loopback(&found.gateway) {
        anyhow::bail!(
            "{} is not a loopback address: the benchmark only runs against this machine",
            found.gateway
        );
    }
    match probe::status(http, &found.gateway).await {
        Ok(_) => {
            let target = args
                .target
                .clone()
                .or_else(|| found.endpoints.as_ref().and_then(|e| e.demo_target.clone()))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the running stack has no demo target: pass --target URL of a datasync \
                         demo target the stack may deliver to"
                    )
                })?;
            Ok(Some(Setup {
                gateway: found.gateway,
                key: found.key.unwrap_or_default(),
                target: target.trim_end_matches('/').to_owned(),
                stack: None,
                tmp: None,
            }))
        }
        Err(e) if args.url.is_some() => {
            Err(e.context("the stack at --url does not answer GET /status"))
        }
        Err(_) => {
            eprintln!(
                "bench: the stack in {} does not answer; starting one in-process there",
                stack_args.data_dir.display()
            );
            Ok(None)
        }
    }
}

/// A stack with the demo target in this process, in `--data-dir` or a fresh temporary
/// directory.
async fn in_process(args: &Args, allow: &[String]) -> anyhow::Result<Setup> {
    Setup::in_process_with(args, allow, "127.0.0.1:0".parse()?, Vec::new()).await
}

impl Setup {
    /// [`in_process`] with the demo target on `demo_target` and `routes` added to the
    /// configuration's `[[routes]]` (`bench --route`: the route names the demo target).
    ///
    /// # Errors
    /// When the configuration or a route is invalid, or the stack fails to start.
    pub async fn in_process_with(
        args: &Args,
        allow: &[String],
        demo_target: std::net::SocketAddr,
        routes: Vec<toml::Table>,
    ) -> anyhow::Result<Setup> {
        start_in_process(args, allow, demo_target, routes).await
    }
}

async fn start_in_process(
    args: &Args,
    allow: &[String],
    demo_target: std::net::SocketAddr,
    routes: Vec<toml::Table>,
) -> anyhow::Result<Setup> {
    let mut config = match &args.config {
        Some(p) => StackConfig::load(p)?,
        None => StackConfig::default(),
    };
    config.routes.extend(routes);
    let settings = config.into_settings()?;
    let (dir, tmp) = match &args.data_dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile_dir()?;
            (t.clone(), Some(t))
        }
    };
    let options = StackOptions {
        data_dir: dir,
        listen: "127.0.0.1:0".parse()?,
        emulator_listen: "127.0.0.1:0".parse()?,
        demo_target: Some(demo_target),
        demo_target_record: false,
        allow_targets: allow.to_vec(),
        settings,
        reset_checkpoints: false,
        // As `datasync up`: the functions' trace lines go to the invoke log.
        trace: crate::cmd::tracing_init::init("warn", !args.no_trace_log),
    };
    let stack = Stack::start(options, crate::cmd::up::functions()).await?;
    let info = stack.info().clone();
    Ok(Setup {
        gateway: info.gateway.clone(),
        key: info.source_key.clone(),
        target: info.demo_target.clone().unwrap_or_default(),
        stack: Some(stack),
        tmp,
    })
}

fn is_loopback(url: &str) -> bool {
    url::Url::parse(url).ok().is_some_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    })
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("datasync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
