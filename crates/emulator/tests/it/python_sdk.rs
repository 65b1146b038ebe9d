//! The official OCI Python SDK as a real client (installed into `.venv` by scripts/venv.sh).

use std::path::PathBuf;

use datasync_emulator::EmulatorOptions;

use crate::util::*;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's Python, after checking it can import the OCI SDK.
fn python_with_oci() -> PathBuf {
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
    python
}

#[tokio::test]
async fn official_python_sdk_works_unchanged() {
    let python = python_with_oci();
    let emu = start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_smoke.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&emu.emulator.profile().config_file)
        .arg(&emu.base)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(emu.emulator.notifications().await.unwrap().len(), 1);
}

#[tokio::test]
async fn notifications_limits_answer_413_and_429_to_the_official_sdk() {
    let python = python_with_oci();
    let limit = 3;
    let mut options = EmulatorOptions::default();
    options.notifications_per_minute = limit;
    let emu = start_with(options).await;
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_notification_limits.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&emu.emulator.profile().config_file)
        .arg(&emu.base)
        .arg(limit.to_string())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    // Only what was accepted is recorded: the 64 KB one and the rest of the minute's share.
    assert_eq!(
        emu.emulator.notifications().await.unwrap().len(),
        limit as usize
    );
}
