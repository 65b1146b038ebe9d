//! `datasync up` refuses what OCI would refuse: a functions configuration map over OCI's 4 KB
//! (keys and values together, in UTF-8 octets) stops it before any function runs, naming the
//! size, the limit and the entry to shorten.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::time::Duration;

use up_support::up_refusing;

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
    let stderr = up_refusing(tmp.path(), &config, Duration::from_secs(120)).await;
    assert!(
        stderr.contains("OCI Functions allows at most 4096")
            && stderr.contains("target_allow_list"),
        "{stderr}"
    );
}
