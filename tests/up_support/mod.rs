//! Shared helpers of the `datasync up` end-to-end tests: start the built binary on free
//! loopback ports in a temporary data directory, read its endpoints and keys, talk HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datasync_local::demo_target::ReceivedReport;
use datasync_local::stack::status::Status;
use datasync_local::stack::StackInfo;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_datasync");

/// Runs `datasync ARGS` with no input until it exits (at most `limit`); its output.
pub async fn run_to_exit<I, S>(args: I, limit: Duration) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(limit, run)
        .await
        .expect("datasync did not exit")
        .unwrap()
}

/// Runs `datasync up` with `config` on `dir`'s data directory, expecting it to refuse to start:
/// fails the test unless it exits non-zero within `limit` without ever becoming ready; its
/// stderr.
pub async fn up_refusing(dir: &Path, config: &str, limit: Duration) -> String {
    let cfg = dir.join("test-config.toml");
    std::fs::write(&cfg, config).unwrap();
    let data = dir.join("data");
    let args = [
        "up".as_ref(),
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--emulator-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--no-demo-target".as_ref(),
    ];
    let out = run_to_exit::<_, &std::ffi::OsStr>(args, limit).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "datasync up started: {stderr}");
    assert!(
        !data.join("endpoints.json").exists(),
        "the stack became ready: {stderr}"
    );
    stderr
}

/// A config for fast tests: small batches and rollover, a short retry schedule.
pub const FAST: &str = r#"
[connector]
batch_size_in_num = 50
batch_time_in_ms = 50
max_backoff_ms = 500
archive_rollover_time_ms = 300

[retry_schedule]
enabled = true
interval_seconds = 1

[functions]
populate_instances = 2
process_instances = 1
retry_instances = 1
"#;

/// Where a started stack's stderr goes, and its `RUST_LOG` filter.
struct Log {
    stderr: Stdio,
    filter: &'static str,
}

pub struct Up {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub info: StackInfo,
    pub client: reqwest::Client,
}

impl Up {
    /// Starts `datasync up` in `dir` with `config` and `extra` args; waits until ready.
    pub async fn start_in(dir: &Path, config: &str, extra: &[&str]) -> Up {
        Self::start_with(dir, config, "127.0.0.1:0", extra).await
    }

    /// [`Up::start_in`] with the demo target on `target` (a fixed port survives restarts,
    /// so messages already in the streams still reach it).
    pub async fn start_with(dir: &Path, config: &str, target: &str, extra: &[&str]) -> Up {
        let log = Log {
            stderr: Stdio::inherit(),
            filter: "warn",
        };
        Self::spawn(dir, config, target, extra, log).await
    }

    /// [`Up::start_with`] with every line of the process's stderr, filtered by `filter`
    /// (`RUST_LOG` syntax; trace lines need their target named, e.g. `datasync_trace=info`),
    /// written to the file `log`.
    pub async fn start_logged(
        dir: &Path,
        config: &str,
        target: &str,
        extra: &[&str],
        log: &Path,
        filter: &'static str,
    ) -> Up {
        let stderr = Stdio::from(std::fs::File::create(log).unwrap());
        let log = Log { stderr, filter };
        Self::spawn(dir, config, target, extra, log).await
    }

    async fn spawn(dir: &Path, config: &str, target: &str, extra: &[&str], log: Log) -> Up {
        let cfg = dir.join("test-config.toml");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(&cfg, config).unwrap();
        let data = dir.join("data");
        let _ = std::fs::remove_file(data.join("endpoints.json"));
        let mut cmd = Command::new(BIN);
        cmd.args(["up", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--emulator-listen",
                "127.0.0.1:0",
                "--demo-target-listen",
                target,
            ])
            .args(extra)
            .env("RUST_LOG", log.filter)
            .stdout(Stdio::null())
            .stderr(log.stderr);
        let child = cmd.spawn().unwrap();
        let file = data.join("endpoints.json");
        let start = Instant::now();
        while !file.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "datasync up did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let info = StackInfo::read(&data).unwrap();
        Up {
            child: Some(child),
            dir: dir.to_owned(),
            info,
            client: reqwest::Client::new(),
        }
    }

    /// Runs `datasync ARGS --data-dir DATA` against this stack until it exits (at most 60 s).
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let data = self.dir.join("data");
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        all.extend([std::ffi::OsStr::new("--data-dir"), data.as_os_str()]);
        run_to_exit(all, Duration::from_secs(60)).await
    }

    /// [`Up::cli`], which must exit 0; its stdout.
    pub async fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "datasync {args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub fn gateway(&self) -> String {
        self.info.gateway.clone()
    }
    pub fn target(&self) -> String {
        self.info.demo_target.clone().unwrap()
    }
    pub fn source_key(&self) -> String {
        self.info.source_key.clone()
    }
    pub fn operator_key(&self) -> String {
        self.info.operator_key.clone()
    }
    pub fn stream(&self, suffix: &str) -> String {
        self.info.streams[&format!("datasync-{suffix}")].clone()
    }

    /// POSTs `body` to `path` with `key`.
    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.gateway()))
            .header("content-type", "application/json")
            .header("authorization", "Bearer e2e-token")
            .body(body.to_string());
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `GET /status` as the stack's [`Status`] document.
    pub async fn status(&self) -> Status {
        serde_json::from_value(self.status_json().await).unwrap()
    }

    /// `GET /status` as it is sent.
    pub async fn status_json(&self) -> Value {
        self.client
            .get(format!("{}/status", self.gateway()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sends SIGINT and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let start = Instant::now();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "datasync up exited with {status}");
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "datasync up did not stop"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback address (bound and released).
pub fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// A sync request to `target`.
pub fn sync_request(target: &str, key: &str, n: usize) -> Value {
    json!({
        "streamKey": key,
        "streamMessage": {
            "vaultSecretName": "e2e",
            "targetRestApi": format!("{target}/orders"),
            "targetRestApiOperation": "POST",
            "targetRestApiPayload": {"n": n, "hello": "world"},
            "targetRestApiHeaders": [{"key": "x-e2e", "value": n.to_string()}]
        }
    })
}

/// GET `url` as JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// POST JSON to `url`.
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> u16 {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Messages ever appended to the stream `name` (0 when it is not listed).
pub fn stream_messages(status: &Status, name: &str) -> i64 {
    status.stream(name).map_or(0, |s| s.messages)
}

/// The demo target's `GET /_received`.
pub async fn received(client: &reqwest::Client, target: &str) -> ReceivedReport {
    serde_json::from_value(get_json(client, &format!("{target}/_received")).await).unwrap()
}

/// The ids (`Idempotency-Key`) the demo target answered 2xx.
pub async fn delivered_ids(client: &reqwest::Client, target: &str) -> Vec<String> {
    received(client, target)
        .await
        .messages
        .unwrap()
        .into_iter()
        .filter(|m| (200..300).contains(&m.status))
        .filter_map(|m| m.headers.get("idempotency-key").cloned())
        .collect()
}

/// A demo target in a process of its own (`datasync demo-target`), so it outlives a `kill -9`
/// of the stack; killed when dropped. `.1` is its URL.
pub struct Target(pub Child, pub String);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a [`Target`] on a free loopback port.
pub fn start_target() -> Target {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(["demo-target", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    Target(child, url)
}
