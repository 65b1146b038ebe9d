//! Helpers: locate and spawn the echo function, call it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fdk::agent::{invoke_request, Invoker};

/// `target/<profile>/examples/echo`, next to this test binary's `deps/` directory.
pub fn echo_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let echo = profile_dir.join("examples").join("echo");
    assert!(
        echo.exists(),
        "{} is missing: run `cargo test -p datasync-fdk` (which builds the examples) or \
         `cargo build -p datasync-fdk --example echo` first",
        echo.display()
    );
    echo
}

/// The echo function running as a child process in its own temporary "iofs" directory.
pub struct Echo {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl Echo {
    /// Spawns echo with `FN_LISTENER` in a fresh directory plus `env`, and waits for the
    /// symlink to appear (as the agent does with inotify).
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, env, Stdio::null())
    }

    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)], out: Stdio) -> Self {
        let socket = dir.path().join("lsnr.sock");
        let mut cmd = Command::new(echo_binary());
        cmd.env_clear()
            .env("FN_LISTENER", fdk::protocol::listener_value(&socket))
            .env("FN_FORMAT", "http-stream")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let echo = Self { child, dir, socket };
        echo.wait_ready();
        echo
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        let is_link = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_symlink());
        while !is_link(&self.socket) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "echo never listened"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub async fn invoker(&self) -> Invoker {
        Invoker::connect(&self.socket).await.unwrap()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most 10 s) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "echo did not exit"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn in_30s() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A plain invoke with extra headers.
pub fn plain(body: &'static [u8], headers: &[(&str, &str)]) -> http::Request<Bytes> {
    let mut req = invoke_request(
        "call-1",
        in_30s(),
        Some("text/plain"),
        Bytes::from_static(body),
    )
    .unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    req
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

/// Every response must carry the FDK headers and an outer status the agent accepts.
pub fn assert_fdk_headers(r: &http::Response<Bytes>) {
    assert!(
        fdk::protocol::is_valid_outer_status(r.status()),
        "outer status {}",
        r.status()
    );
    let v = r.headers()["fn-fdk-version"].to_str().unwrap();
    assert_eq!(v, concat!("fdk-rust/", env!("CARGO_PKG_VERSION")));
    let rt = r.headers()["fn-fdk-runtime"].to_str().unwrap();
    assert!(rt.starts_with("rust/1."), "{rt}");
}
