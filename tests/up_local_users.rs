//! `datasync up` against another local user: the data directory and everything in it are the
//! owner's alone (a function socket trusts the caller identity it is sent, so reaching one would
//! skip the API key), and a data directory others can write is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use up_support::*;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Every path below `dir` (symbolic links left out) whose mode gives group or others anything.
fn open_to_others(dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // removed meanwhile (a temporary file)
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.mode() & 0o077 != 0 {
            found.push(format!("{} {:o}", path.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            open_to_others(&path, found);
        }
    }
}

/// Connects to the Unix socket `socket` as `nobody` with curl; whether the connection was made.
fn nobody_connects(socket: &Path) -> bool {
    let out = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "curl",
        ])
        .args(["-sS", "-o", "/dev/null", "-X", "POST", "--unix-socket"])
        .arg(socket)
        .arg("http://localhost/call")
        .output()
        .expect("setpriv and curl are needed to test another user");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // curl's 7: could not connect.
    match out.status.code() {
        Some(0) => true,
        Some(7) => false,
        other => panic!("curl as nobody: {other:?} {stderr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_the_owners_alone_and_refused_when_others_can_write_it() {
    let tmp = tempfile::tempdir().unwrap();
    // As a home directory often is: only the data directory's own modes keep others out.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut up = Up::start_in(tmp.path(), FAST, &[]).await;
    let data = tmp.path().join("data");
    let (status, answer) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&up.target(), "k", 1),
        )
        .await;
    assert_eq!(status, 200, "{answer}");

    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("fn")), 0o700);
    assert_eq!(mode(&data.join("emulator.db")), 0o600);
    let socket = data.join("fn").join("populate-0.sock");
    let target = std::fs::metadata(&socket).unwrap();
    assert!(target.file_type().is_socket());
    assert_eq!(target.mode() & 0o777, 0o600);
    let mut open = Vec::new();
    open_to_others(&data, &mut open);
    assert!(open.is_empty(), "open to others: {open:?}");

    // /proc/self belongs to the process's effective user.
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    if uid == 0 {
        // The same socket, reached by the owner (root), then by another user.
        let owner = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-X", "POST", "--unix-socket"])
            .arg(&socket)
            .arg("http://localhost/call")
            .status()
            .unwrap();
        assert!(owner.success(), "the owner could not reach its own socket");
        assert!(
            !nobody_connects(&socket),
            "another user reached a function socket"
        );
    } else {
        println!(
            "skipped: connecting as another user needs root (setpriv); this test runs as uid {uid}"
        );
    }
    up.stop();

    // A data directory its group can write is refused, naming it and the fix.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o770)).unwrap();
    std::fs::remove_file(data.join("endpoints.json")).unwrap();
    let out = run_to_exit(
        [
            "up",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--emulator-listen",
            "127.0.0.1:0",
            "--demo-target-listen",
            "127.0.0.1:0",
        ],
        Duration::from_secs(30),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("the data directory {}", data.display())),
        "{stderr}"
    );
    assert!(stderr.contains("can be written by its group"), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 700 {}", data.display())),
        "{stderr}"
    );
    assert!(!data.join("endpoints.json").exists());
}
