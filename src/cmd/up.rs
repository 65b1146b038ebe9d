//! `datasync up`: the whole stack on this machine, no cloud account.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use datasync_local::stack::serve_fn;
use datasync_local::stack::{Functions, Stack, StackConfig, StackInfo, StackOptions};

/// Runs the local stack: OCI emulator, the three functions, the API Gateway front, the
/// Service Connector pump and the demo target, until Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where state is kept (emulator database, keys, checkpoints, sockets). A second start on
    /// the same directory continues where the first stopped.
    #[arg(long, value_name = "DIR", default_value = ".datasync")]
    pub data_dir: PathBuf,
    /// A TOML configuration file (streams, connectors, functions, gateway keys and limits);
    /// every value has a default, so none is needed.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The API Gateway front's address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The OCI emulator's address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
    pub emulator_listen: SocketAddr,
    /// The demo target's address (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub demo_target_listen: SocketAddr,
    /// Do not start the demo target.
    #[arg(long)]
    pub no_demo_target: bool,
    /// Allow delivering to HOST[:PORT] (repeatable); the demo target is always allowed.
    #[arg(long = "allow-target", value_name = "HOST[:PORT]")]
    pub allow_targets: Vec<String>,
    /// After the emulator database was deleted, emptied or replaced: reset the connectors'
    /// checkpoints and the consumer groups' positions that do not belong to the streams they
    /// name, so every stream is read from its beginning (without it, such a start is refused).
    #[arg(long)]
    pub reset_checkpoints: bool,
}

/// The three functions, from the function crates, served in-process: each instance reads its
/// own configuration when it starts, as a function container does.
pub fn functions() -> Functions {
    Functions {
        populate: serve_fn(|config| {
            let handler = populate::Handler::from_config(config);
            fdk::service_fn(move |event: fdk::FnEvent| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(event).await) }
            })
        }),
        process: serve_fn(|config| {
            let handler = process::Process::from_config(config);
            fdk::service_fn(move |event: fdk::FnEvent| {
                let handler = handler.clone();
                async move {
                    let (ctx, body) = event.into_parts();
                    Ok::<_, Infallible>(handler.handle(&ctx, &body).await)
                }
            })
        }),
        retry: serve_fn(|config| {
            let handler = retry::Retry::from_config(config);
            fdk::service_fn(move |event: fdk::FnEvent| {
                let handler = handler.clone();
                async move {
                    let (ctx, body) = event.into_parts();
                    Ok::<_, Infallible>(handler.handle(&ctx, &body).await)
                }
            })
        }),
    }
}

/// The exit status after a second Ctrl-C or SIGTERM cut the drain short (128 + SIGINT).
pub const FORCED_EXIT: i32 = 130;

/// Runs until Ctrl-C or SIGTERM, then stops in order and exits 0; a second signal during the
/// drain exits at once with [`FORCED_EXIT`].
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let trace = super::tracing_init::init("info", true);
    let config = match &args.config {
        Some(path) => StackConfig::load(path)?,
        None => StackConfig::default(),
    };
    let settings = config.into_settings()?;
    let routes = settings.routes.names.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let options = StackOptions {
            data_dir: args.data_dir.clone(),
            listen: args.listen,
            emulator_listen: args.emulator_listen,
            demo_target: (!args.no_demo_target).then_some(args.demo_target_listen),
            demo_target_record: true,
            allow_targets: args.allow_targets.clone(),
            settings,
            reset_checkpoints: args.reset_checkpoints,
            trace,
        };
        let stack = Stack::start(options, functions()).await?;
        print_banner(stack.info(), &args.data_dir, &routes);
        print_callback_secret(stack.new_callback_secret(), &args.data_dir);
        wait_for_signal().await;
        tracing::info!(
            "stopping: no new requests; finishing what is in flight (a second Ctrl-C stops at once)"
        );
        tokio::select! {
            () = stack.shutdown() => {}
            () = wait_for_signal() => {
                // Nothing acknowledged is lost: accepted messages are committed to the data
                // stream, and a batch is committed only after process answers, so what was cut
                // short is delivered again on the next start (as after kill -9).
                tracing::warn!(
                    "second signal: stopped at once; batches in flight are delivered again on the next start"
                );
                std::process::exit(FORCED_EXIT);
            }
        }
        tracing::info!("stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

fn print_banner(info: &StackInfo, data_dir: &std::path::Path, routes: &[String]) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let target = info
        .demo_target
        .clone()
        .unwrap_or_else(|| "https://your-target.example.com".to_owned());
    let _ = writeln!(
        out,
        "datasync is up{}",
        if info.first_start {
            " (first start: new keys)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "  endpoint:      {}/stream/sync   (operator: {}/stream/retry)",
        info.gateway, info.gateway
    );
    let _ = writeln!(out, "  status page:   {}/", info.gateway);
    if let Some(t) = &info.demo_target {
        let _ = writeln!(
            out,
            "  demo target:   {t}   (received: {t}/_received, controls: {t}/_help)"
        );
    }
    if !routes.is_empty() {
        let _ = writeln!(
            out,
            "  routes:        {}   (datasync routes list --data-dir {})",
            routes.join(", "),
            data_dir.display()
        );
    }
    let _ = writeln!(out, "  source key:    {}", info.source_key);
    let _ = writeln!(out, "  operator key:  {}", info.operator_key);
    let _ = writeln!(
        out,
        "  keys file:     {}",
        data_dir
            .join(datasync_local::stack::keys::KEYS_FILE)
            .display()
    );
    let _ = writeln!(out, "  OCI emulator:  {}", info.emulator);
    let _ = writeln!(out, "  OCI CLI:       oci --config-file {} --profile {} --endpoint {} streaming admin stream list --compartment-id {}",
        info.oci_config_file.display(), info.oci_profile, info.emulator, info.compartment);
    let _ = writeln!(out, "try:");
    let _ = writeln!(
        out,
        "  curl -sS -H 'x-api-key: {}' -H 'content-type: application/json' -H 'authorization: Bearer demo-token' -d '{{\"streamKey\":\"k1\",\"streamMessage\":{{\"vaultSecretName\":\"demo\",\"targetRestApi\":\"{target}/orders\",\"targetRestApiOperation\":\"POST\",\"targetRestApiPayload\":{{\"hello\":\"world\"}},\"targetRestApiHeaders\":[{{\"key\":\"x-demo\",\"value\":\"1\"}}]}}}}' {}/stream/sync",
        info.source_key, info.gateway
    );
    let _ = writeln!(
        out,
        "Ctrl-C stops (in-flight work finishes first; a second Ctrl-C stops at once)."
    );
    let _ = out.flush();
}

/// Shows the callback signing secret the first start made, once; later starts name its file.
fn print_callback_secret(created: Option<&str>, data_dir: &std::path::Path) {
    use std::io::Write as _;
    let file = data_dir.join(datasync_local::stack::CALLBACK_SECRET_FILE);
    let mut out = std::io::stdout().lock();
    let _ = match created {
        Some(secret) => writeln!(
            out,
            "  callback secret (shown once; verify statusCallback requests with it, docs/callbacks.md):\n    {secret}\n    kept in {}",
            file.display()
        ),
        None => writeln!(out, "  callback secret: in {}", file.display()),
    };
    let _ = out.flush();
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    if let Ok(mut term) = signal(SignalKind::terminate()) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        return;
    }
    let _ = tokio::signal::ctrl_c().await;
}
