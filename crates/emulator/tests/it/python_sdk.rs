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

/// SearchLogs through the SDK's LogSearchClient: a log's lines found by a `where` on
/// `data.message`, paged two at a time, in time order; unsupported queries and spans over 14
/// days are 400s.
#[tokio::test]
async fn official_python_sdk_searches_logs() {
    use datasync_emulator::{LogLine, LogSpec};
    use std::time::{Duration, SystemTime};
    let emu = start().await;
    let ids = emu
        .emulator
        .ensure_log(LogSpec {
            compartment: emu.emulator.profile().compartment.clone(),
            group_name: "g".into(),
            log_name: "invoke".into(),
            application_name: "app".into(),
            application_id: "ocid1.fnapp.oc1.local.app".into(),
            retention_hours: 24,
        })
        .await
        .unwrap();
    let t0 = SystemTime::now() - Duration::from_secs(60);
    let lines: Vec<LogLine> = (0..5)
        .map(|n| {
            LogLine::new(
                t0 + Duration::from_millis(n * 10),
                "process",
                format!(
                    r#"{{"timestamp":"x","level":"INFO","fields":{{"event":"attempt","id":"{}","attempt":{n}}},"target":"datasync_trace"}}"#,
                    if n % 2 == 0 { "even" } else { "odd" }
                ),
            )
        })
        .collect();
    emu.emulator
        .append_log_lines(&ids.log_id, lines)
        .await
        .unwrap();
    let python = repo_root().join(".venv/bin/python");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_search_logs.py");
    let scope = format!("{}/g/invoke", emu.emulator.profile().compartment);
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .arg(&emu.emulator.profile().config_file)
        .arg(&emu.base)
        .arg(&scope)
        .arg(r#""id":"even""#)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let attempts: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with('"'))
        .map(|l| {
            let m: String = serde_json::from_str(l).unwrap();
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            v["fields"]["attempt"].to_string()
        })
        .collect();
    assert_eq!(attempts, ["0", "2", "4"]);
}
