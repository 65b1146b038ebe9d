//! Stage 4: the three functions, configured as `terraform/functions.tf` configures them (the
//! keys of `function_config`), each with its own resource principal from the emulator, served
//! through `fdk` on Unix sockets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datasync_core::function_config as fn_keys;
use tokio::task::JoinHandle;

use super::emulator::EmulatorPart;
use crate::emulator::{Emulator, ResourcePrincipal, LOCAL_COMPARTMENT, NAMESPACE};
use crate::stack::error::{setup, StackError};
use crate::stack::host::{Host, Pool};
use crate::stack::streams::ROLES;
use crate::stack::{Functions, Resources, StackSettings};

/// The functions' names, in the order of [`Functions`] and `StackSettings::instances`.
const NAMES: [&str; 3] = ["populate", "process", "retry"];

/// How long a resource principal token lives; it is minted again every hour.
const RP_TTL: Duration = Duration::from_secs(6 * 3600);

/// What [`start`] needs.
pub(crate) struct FunctionsInput<'a> {
    /// The data directory (`fn/` holds the sockets and resource principals).
    pub dir: &'a Path,
    /// The emulator the functions call.
    pub emulator: &'a EmulatorPart,
    /// The OCIDs they are configured with.
    pub resources: &'a Resources,
    /// The demo target's base URL, always on the allow-list.
    pub demo_target: Option<&'a str>,
    /// Extra allow-list entries (`--allow-target`).
    pub allow_targets: &'a [String],
    /// The stack's settings.
    pub settings: &'a StackSettings,
    /// The functions to serve.
    pub functions: &'a Functions,
}

/// The running functions.
pub(crate) struct FunctionsPart {
    /// Serves every instance.
    pub host: Host,
    /// populate's pool.
    pub populate: Arc<Pool>,
    /// process's pool.
    pub process: Arc<Pool>,
    /// retry's pool.
    pub retry: Arc<Pool>,
    /// Mints the resource principals again before they expire.
    pub refresher: JoinHandle<()>,
}

/// Starts every instance of the three functions and waits until each listens.
pub(crate) async fn start(input: FunctionsInput<'_>) -> Result<FunctionsPart, StackError> {
    let s = input.settings;
    let config = function_config(&input);
    super::config_map::check_config_map(&config)?;
    check_route_callbacks(&input, &config)?;
    let fn_dir = input.dir.join("fn");
    let principals = mint_principals(&input.emulator.emulator, &fn_dir).await?;
    let serves = [
        &input.functions.populate,
        &input.functions.process,
        &input.functions.retry,
    ];
    let mut host = Host::new();
    let mut pools = Vec::with_capacity(NAMES.len());
    for (i, (name, rp)) in NAMES.iter().zip(principals).enumerate() {
        let mut vars = config.clone();
        vars.extend(rp.env());
        vars.insert(fdk::protocol::ENV_FN_NAME.into(), (*name).to_owned());
        vars.insert(fdk::protocol::ENV_FN_ID.into(), rp.resource_id.clone());
        vars.insert(
            fdk::protocol::ENV_APP_ID.into(),
            "ocid1.fnapp.oc1.local.datasync".into(),
        );
        let config: fdk::Config = vars.into_iter().collect();
        let pool = host
            .start(name, serves[i], s.instances[i], &fn_dir, &config)
            .await
            .map_err(|source| StackError::Function {
                name: (*name).to_owned(),
                source,
            })?;
        pools.push(pool);
    }
    let mut pools = pools.into_iter();
    let (Some(populate), Some(process), Some(retry)) = (pools.next(), pools.next(), pools.next())
    else {
        return Err(setup("the function pools", &"a function did not start"));
    };
    Ok(FunctionsPart {
        host,
        populate,
        process,
        retry,
        refresher: refresh_principals(input.emulator.emulator.clone(), fn_dir),
    })
}

/// The configuration every function gets: the stream OCIDs, the vault, the topic, the
/// allow-list (the demo target, the configuration's and `--allow-target`'s entries), plain
/// http and private targets allowed, the configuration file's overrides, and where the
/// emulator is.
fn function_config(input: &FunctionsInput<'_>) -> BTreeMap<String, String> {
    let s = input.settings;
    let resources = input.resources;
    let mut config: BTreeMap<String, String> = BTreeMap::new();
    for role in &ROLES {
        if let Some(id) = resources.streams.get(&role.stream_name(&s.name_prefix)) {
            config.insert(role.config_key.to_owned(), id.clone());
        }
    }
    config.insert(fn_keys::VAULT.into(), resources.vault.clone());
    config.insert(fn_keys::VAULT_COMPARTMENT.into(), LOCAL_COMPARTMENT.into());
    config.insert(fn_keys::VAULT_KEY.into(), resources.vault_key.clone());
    if let Some(topic) = &resources.topic {
        config.insert(fn_keys::NOTIFICATION_TOPIC.into(), topic.clone());
    }
    if let Some(endpoint) = &resources.topic_endpoint {
        config.insert(
            fn_keys::NOTIFICATION_TOPIC_ENDPOINT.into(),
            endpoint.clone(),
        );
    }
    let n = &s.notifications;
    config.insert(
        fn_keys::NOTIFY_DEAD_LETTER_PAYLOADS.into(),
        n.notify_dead_letter_payloads.to_string(),
    );
    config.insert(
        fn_keys::NOTIFICATION_RATE_PER_MINUTE.into(),
        n.rate_per_minute.to_string(),
    );
    if !resources.parked_bucket.is_empty() {
        config.insert(
            fn_keys::PARKED_KEYS_BUCKET.into(),
            resources.parked_bucket.clone(),
        );
        config.insert(fn_keys::PARKED_KEYS_NAMESPACE.into(), NAMESPACE.into());
    }
    if s.metrics.enabled {
        // As terraform/ configures them; the emulator serves PostMetricData.
        config.insert(
            fn_keys::METRICS_COMPARTMENT.into(),
            LOCAL_COMPARTMENT.into(),
        );
        config.insert(
            fn_keys::METRICS_NAMESPACE.into(),
            s.metrics.namespace.clone(),
        );
        config.insert(
            fn_keys::METRICS_ENDPOINT.into(),
            input.emulator.base.clone(),
        );
    }
    config.insert(
        fn_keys::ROUTES_OBJECT.into(),
        resources.routes_object.clone(),
    );
    config.insert(fn_keys::TARGET_ALLOW_LIST.into(), allow_list(input));
    config.insert(fn_keys::ALLOW_HTTP_TARGETS.into(), "true".into());
    config.insert(fn_keys::ALLOW_PRIVATE_TARGETS.into(), "true".into());
    for (k, v) in &s.function_config {
        config.insert(k.clone(), v.clone());
    }
    config.insert("DATASYNC_OCI_ENDPOINT".into(), input.emulator.base.clone());
    // As terraform/ sets the vault's crypto endpoint: here the emulator serves it.
    config.insert(
        fn_keys::VAULT_CRYPTO_ENDPOINT.into(),
        input.emulator.base.clone(),
    );
    if let Some(path) = &input.emulator.socket {
        config.insert(
            "DATASYNC_OCI_UNIX_SOCKET".into(),
            path.to_string_lossy().into_owned(),
        );
    }
    config.insert(fdk::protocol::ENV_APP_NAME.into(), s.name_prefix.clone());
    config.insert(
        fdk::protocol::ENV_FORMAT.into(),
        fdk::protocol::FORMAT_HTTP_STREAM.into(),
    );
    config
}

/// Refuses routes whose `status_callback` is not on the functions' allow-list (the functions
/// would refuse the routes object as broken), naming the route, before anything runs.
fn check_route_callbacks(
    input: &FunctionsInput<'_>,
    config: &BTreeMap<String, String>,
) -> Result<(), StackError> {
    let routes = datasync_core::routes::RouteSet::from_json(&input.settings.routes.json)?;
    let allow = config
        .get(fn_keys::TARGET_ALLOW_LIST)
        .map(String::as_str)
        .unwrap_or_default();
    let policy = datasync_core::message::Policy {
        allow_list: datasync_core::message::AllowList::parse(allow)
            .map_err(|e| setup("the allow-list", &e))?,
        allow_http: config
            .get(fn_keys::ALLOW_HTTP_TARGETS)
            .is_some_and(|v| v == "true"),
    };
    Ok(routes.check_callbacks(&policy)?)
}

/// The allow-list: the demo target, then the configuration's and `--allow-target`'s entries.
fn allow_list(input: &FunctionsInput<'_>) -> String {
    let mut allow: Vec<String> = Vec::new();
    if let Some(url) = input.demo_target {
        allow.push(url.trim_start_matches("http://").to_owned());
    }
    allow.extend(input.settings.allow_targets.iter().cloned());
    allow.extend(input.allow_targets.iter().cloned());
    if allow.is_empty() {
        // The functions refuse an empty allow-list; keep a harmless entry.
        allow.push("localhost:1".to_owned());
    }
    allow.join(",")
}

/// A resource principal for each function. Each needs a new RSA key: the three are made at
/// once, off the runtime's threads (key generation takes a good part of a second each).
async fn mint_principals(
    emulator: &Emulator,
    fn_dir: &Path,
) -> Result<Vec<ResourcePrincipal>, StackError> {
    let minting: Vec<_> = NAMES
        .iter()
        .map(|&name| {
            let (emulator, dir) = (emulator.clone(), fn_dir.join(format!("{name}-rp")));
            tokio::task::spawn_blocking(move || {
                emulator.mint_resource_principal(name, &dir, RP_TTL)
            })
        })
        .collect();
    let mut principals = Vec::with_capacity(NAMES.len());
    for task in minting {
        let minted = task
            .await
            .map_err(|e| setup("the functions' resource principals", &e))?;
        principals.push(minted?);
    }
    Ok(principals)
}

/// Mints every function's resource principal again each hour, well within [`RP_TTL`].
fn refresh_principals(emulator: Emulator, fn_dir: PathBuf) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            for name in NAMES {
                let dir = fn_dir.join(format!("{name}-rp"));
                if let Err(e) = emulator.mint_resource_principal(name, &dir, RP_TTL) {
                    tracing::warn!(function = name, error = %e, "refreshing the resource principal failed");
                }
            }
        }
    })
}
