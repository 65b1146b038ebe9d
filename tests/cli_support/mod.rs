//! Running the `datasync` binary as an operator does: arguments, text on stdin, what it
//! printed and how it exited.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

/// The binary under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_datasync");

/// One finished run.
pub struct Run {
    /// Its exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Whether it exited 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `datasync ARGS` with `env` set and `stdin` (closed when `None`); fails the test when
/// it has not finished within `limit`.
pub async fn run_cli(
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
    limit: Duration,
) -> Run {
    let mut child = tokio::process::Command::new(CLI)
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).await.unwrap();
        drop(input);
    }
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("datasync {args:?} did not finish within {limit:?}"))
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
