//! `datasync up` refuses what OCI would refuse: a functions configuration map over OCI's 4 KB
//! (keys and values together, in UTF-8 octets) stops it before any function runs, naming the
//! size, the limit and the entry to shorten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::Duration;

use up_support::run_to_exit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_map_over_4_kb_is_refused_as_oci_would() {
    let tmp = tempfile::tempdir().unwrap();
    let hosts: Vec<String> = (0..250)
        .map(|i| format!("host-{i:03}.example.com"))
        .collect();
    let config = format!(
        "[functions.config]\ntarget_allow_list = \"{}\"\n",
        hosts.join(",")
    );
    let cfg = tmp.path().join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    let data = tmp.path().join("data");
    let args = [
        "up",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--emulator-listen",
        "127.0.0.1:0",
        "--demo-target-listen",
        "127.0.0.1:0",
    ];
    let out = run_to_exit(args, Duration::from_secs(120)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("OCI Functions allows at most 4096")
            && stderr.contains("target_allow_list"),
        "{stderr}"
    );
    assert!(
        !data.join("endpoints.json").exists(),
        "the stack became ready"
    );
}
