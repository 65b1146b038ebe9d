//! `datasync oci ...`: signed calls to OCI APIs, for operators debugging policies and endpoints.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use datasync_core::oci::auth::{AuthProvider, ConfigFileAuth, ResourcePrincipalAuth};
use datasync_core::oci::client::{OciClient, OciError, OciRequest, RetryPolicy, Timeouts};

/// Tools that talk to OCI directly.
#[derive(Debug, clap::Subcommand)]
pub enum OciCommand {
    /// Signs a request with your credentials, sends it, and prints the status, the
    /// opc-request-id and the body (like the OCI CLI's `raw-request`).
    RawRequest(RawRequest),
}

/// How the request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthKind {
    /// An API key from an OCI config file.
    ApiKey,
    /// Resource principal v2.2 from the `OCI_RESOURCE_PRINCIPAL_*` variables (inside OCI
    /// Functions).
    ResourcePrincipal,
}

/// HTTP methods raw-request sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RawMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

/// `datasync oci raw-request`.
#[derive(Debug, clap::Args)]
pub struct RawRequest {
    /// The HTTP method.
    #[arg(long, value_enum, ignore_case = true)]
    method: RawMethod,
    /// The full URL, e.g. https://streaming.us-phoenix-1.oci.oraclecloud.com/20180418/streams/<ocid>.
    #[arg(long)]
    url: String,
    /// The request body: a file, or - for standard input (POST and PUT).
    #[arg(long)]
    body: Option<String>,
    /// The body's content type.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Sign only `date (request-target) host`, as the SDKs do for PutMessages and PutObject.
    #[arg(long)]
    exclude_body_from_signature: bool,
    /// The OCI config file (default: $OCI_CONFIG_FILE, then ~/.oci/config).
    #[arg(long)]
    config_file: Option<PathBuf>,
    /// The profile in the config file (default: $OCI_CLI_PROFILE, then DEFAULT).
    #[arg(long)]
    profile: Option<String>,
    /// Where the credentials come from.
    #[arg(long, value_enum, default_value = "api-key")]
    auth: AuthKind,
}

/// Runs an `oci` subcommand.
pub fn run(command: OciCommand) -> anyhow::Result<ExitCode> {
    match command {
        OciCommand::RawRequest(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(raw_request(args))
        }
    }
}

async fn raw_request(args: RawRequest) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let auth: Arc<dyn AuthProvider> = match args.auth {
        AuthKind::ApiKey => Arc::new(ConfigFileAuth::from_config(
            args.config_file.as_deref(),
            args.profile.as_deref(),
            env,
        )?),
        AuthKind::ResourcePrincipal => Arc::new(ResourcePrincipalAuth::from_env(env)?),
    };
    let url =
        url::Url::parse(&args.url).with_context(|| format!("--url {} is not a URL", args.url))?;
    let method = match args.method {
        RawMethod::Get => http::Method::GET,
        RawMethod::Post => http::Method::POST,
        RawMethod::Put => http::Method::PUT,
        RawMethod::Delete => http::Method::DELETE,
    };
    let body = match args.body.as_deref() {
        None => Vec::new(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("cannot read the body from standard input")?;
            buf
        }
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read the body file {path}"))?
        }
    };
    // One attempt: a person is watching and wants to see exactly what the service answered.
    let client = OciClient::with_settings(auth, Timeouts::default(), RetryPolicy::NONE)?;
    let mut request = OciRequest::new("raw-request", method, url);
    request.body = body.into();
    if !request.body.is_empty() || matches!(args.method, RawMethod::Post | RawMethod::Put) {
        let content_type = http::HeaderValue::from_str(&args.content_type).with_context(|| {
            format!(
                "--content-type {} is not a valid header value",
                args.content_type
            )
        })?;
        request
            .headers
            .insert(http::header::CONTENT_TYPE, content_type);
    }
    if args.exclude_body_from_signature {
        request = request.exclude_body_from_signature();
    }
    match client.send(&request).await {
        Ok(response) => {
            println!("status: {}", response.status.as_u16());
            println!(
                "opc-request-id: {}",
                response.request_id().unwrap_or("none")
            );
            println!();
            println!("{}", pretty(&response.body));
            Ok(ExitCode::SUCCESS)
        }
        Err(OciError::Service {
            status,
            code,
            message,
            opc_request_id,
            ..
        }) => {
            println!("status: {status}");
            println!(
                "opc-request-id: {}",
                opc_request_id.as_deref().unwrap_or("none")
            );
            println!();
            println!(
                "{}",
                serde_json::json!({ "code": code, "message": message })
            );
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}

/// The body as indented JSON when it is JSON, else as text.
fn pretty(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}
