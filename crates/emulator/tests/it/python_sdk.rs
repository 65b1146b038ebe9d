//! The official OCI Python SDK as a real client (installed into `.venv` by scripts/venv.sh).

use std::path::PathBuf;

use datasync_emulator::EmulatorOptions;

use crate::util::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/python/<script> CONFIG BASE [extra...]` against `emu` with the official SDK; it
/// must print OK.
async fn run_script(emu: &Running, script: &str, extra: &[&str]) {
    let python = repo_root().join(".venv/bin/python");
    let has_oci = std::process::Command::new(&python)
        .args(["-c", "import oci"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_oci,
        "{} cannot import the OCI SDK: run scripts/venv.sh first",
        python.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&emu.emulator.profile().config_file)
        .arg(&emu.base)
        .args(extra)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

#[tokio::test]
async fn official_python_sdk_works_unchanged() {
    let emu = start().await;
    run_script(&emu, "sdk_smoke.py", &[]).await;
    assert_eq!(emu.emulator.notifications().await.unwrap().len(), 1);
}

/// 1 MiB per message and per request (413 PayloadTooLarge), retention bounds at creation (400),
/// and UpdateStream keeping partitions and retention, all through the SDK.
#[tokio::test]
async fn streaming_limits_hold_for_the_official_python_sdk() {
    let emu = start().await;
    run_script(&emu, "streaming_limits.py", &[]).await;
}

#[tokio::test]
async fn notifications_limits_answer_413_and_429_to_the_official_sdk() {
    let limit = 3;
    let mut options = EmulatorOptions::default();
    options.notifications_per_minute = limit;
    let emu = start_with(options).await;
    run_script(&emu, "sdk_notification_limits.py", &[&limit.to_string()]).await;
    // Only what was accepted is recorded: the 64 KB one and the rest of the minute's share.
    assert_eq!(
        emu.emulator.notifications().await.unwrap().len(),
        limit as usize
    );
}
