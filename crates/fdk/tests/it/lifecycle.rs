//! Process lifecycle: the socket dance, startup failures, log framing, SIGTERM.

use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::utils::{echo_binary, plain, Echo, TIMEOUT};

#[test]
fn socket_dance_relative_symlink_to_a_0666_socket() {
    let dir = tempfile::tempdir().unwrap();
    // Stale files from a previous instance must be replaced.
    std::fs::write(dir.path().join("lsnr.sock"), b"stale").unwrap();
    std::fs::write(dir.path().join("phonylsnr.sock"), b"stale").unwrap();
    let echo = Echo::start_in(dir, &[], Stdio::null());

    let link = std::fs::symlink_metadata(&echo.socket).unwrap();
    assert!(link.file_type().is_symlink());
    let target = std::fs::read_link(&echo.socket).unwrap();
    assert_eq!(
        target,
        Path::new("phonylsnr.sock"),
        "the target must be relative"
    );

    let phony = echo.dir.path().join("phonylsnr.sock");
    let meta = std::fs::symlink_metadata(&phony).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    fdk::protocol::check_socket_destination(&echo.socket).unwrap();
}

#[tokio::test]
async fn sigterm_finishes_the_call_in_flight_then_removes_both_files() {
    let mut echo = Echo::start(&[]);
    let mut inv = echo.invoker().await;
    assert_eq!(
        inv.call(plain(b"warm", &[]), TIMEOUT)
            .await
            .unwrap()
            .status(),
        200
    );

    let mut slow = echo.invoker().await;
    let call = tokio::spawn(async move {
        slow.call(
            plain(b"in flight", &[("x-echo-mode", "sleep=400")]),
            TIMEOUT,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    echo.signal("TERM");
    let r = call.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body(), "in flight");

    assert_eq!(echo.wait_exit(), Some(0));
    assert!(
        std::fs::symlink_metadata(&echo.socket).is_err(),
        "symlink left behind"
    );
    let phony = echo.dir.path().join("phonylsnr.sock");
    assert!(
        std::fs::symlink_metadata(phony).is_err(),
        "socket left behind"
    );
}

#[test]
fn sigint_exits_0_and_cleans_up() {
    let mut echo = Echo::start(&[]);
    echo.signal("INT");
    assert_eq!(echo.wait_exit(), Some(0));
    assert!(std::fs::read_dir(echo.dir.path()).unwrap().next().is_none());
}

fn startup_failure(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(echo_binary());
    cmd.env_clear().stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_environment_exits_1_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let good = fdk::protocol::listener_value(&dir.path().join("lsnr.sock"));
    let long = format!("unix:/tmp/{}", "x".repeat(100));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "FN_LISTENER is not set"),
        (
            vec![("FN_LISTENER", "/tmp/iofs/lsnr.sock")],
            "must start with `unix:`",
        ),
        (vec![("FN_LISTENER", "unix:lsnr.sock")], "must be absolute"),
        (vec![("FN_LISTENER", &long)], "at most 107"),
        (
            vec![("FN_LISTENER", &good), ("FN_FORMAT", "json")],
            "FN_FORMAT=\"json\" is not supported",
        ),
        (
            vec![("FN_LISTENER", "unix:/nonexistent-dir-fdk/lsnr.sock")],
            "/nonexistent-dir-fdk/phonylsnr.sock",
        ),
    ];
    for (env, expected) in cases {
        let (code, stderr) = startup_failure(&env);
        assert_eq!(code, Some(1), "{env:?}: {stderr}");
        assert!(stderr.starts_with("fdk: "), "{stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
    }
    // An empty FN_FORMAT is accepted (as the Go FDK does).
    let mut echo = Echo::start(&[("FN_FORMAT", "")]);
    echo.signal("TERM");
    assert_eq!(echo.wait_exit(), Some(0));
}

#[tokio::test]
async fn log_frames_on_stdout_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut echo = Echo::start_in(
        dir,
        &[
            ("FN_LOGFRAME_NAME", "01FRAME"),
            ("FN_LOGFRAME_HDR", "Fn-Call-Id"),
        ],
        Stdio::piped(),
    );
    let mut inv = echo.invoker().await;
    inv.call(plain(b"x", &[]), TIMEOUT).await.unwrap();
    echo.signal("TERM");
    assert_eq!(echo.wait_exit(), Some(0));
    let mut out = String::new();
    echo.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    echo.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(out, "\n01FRAME=call-1\n");
    assert!(err.contains("\n01FRAME=call-1\n"), "{err}");
}
