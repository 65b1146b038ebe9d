//! State the stack cannot trust is refused at start, and a database that stops taking writes
//! says so: a lost emulator database (connectors' checkpoints beyond the new streams), a
//! damaged one (`PRAGMA quick_check` fails), and writes failing while running (503, visible on
//! the status page and in `datasync status`). A damaged log database (trace lines only) is
//! moved aside instead, so it never keeps the messages from flowing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod up_support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use up_support::*;

/// `datasync up` on `dir`'s data directory as [`Up::start_with`] runs it, until it exits.
async fn up_to_exit(dir: &Path, target: &str, extra: &[&str]) -> std::process::Output {
    let data = dir.join("data");
    let cfg = dir.join("test-config.toml");
    let mut args: Vec<&str> = vec![
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
        target,
    ];
    args.extend(extra);
    run_to_exit(args, Duration::from_secs(60)).await
}

/// Sends the messages numbered `from..from + count` and waits until the demo target has
/// them all.
async fn send_and_deliver(up: &Up, from: usize, count: usize) {
    for n in from..from + count {
        let (code, body) = up
            .post(
                "/stream/sync",
                Some(&up.source_key()),
                &sync_request(&up.target(), &format!("k{n}"), n),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let want: HashSet<u64> = (from..from + count).map(|n| n as u64).collect();
    let got = eventually(Duration::from_secs(20), || async {
        let seen: HashSet<u64> = received(&up.client, &up.target())
            .await
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.status == 200)
            .filter_map(|m| serde_json::from_str::<serde_json::Value>(&m.body).ok())
            .filter_map(|v| v["n"].as_u64())
            .collect();
        want.is_subset(&seen).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "messages {from}..{} were not all delivered",
        from + count
    );
}

fn remove_database(data: &Path) {
    for f in ["emulator.db", "emulator.db-wal", "emulator.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
}

/// After the emulator database is deleted, the data connector's checkpoint points past the
/// new, empty data stream: the start is refused (before, it started and the next messages
/// were never delivered); `--reset-checkpoints` starts and delivers everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_is_refused_until_the_checkpoints_are_reset() {
    let tmp = tempfile::tempdir().unwrap();
    let target = free_addr();
    let mut up = Up::start_with(tmp.path(), FAST, &target, &[]).await;
    send_and_deliver(&up, 0, 30).await;
    up.stop();
    let data = tmp.path().join("data");
    remove_database(&data);

    let out = up_to_exit(tmp.path(), &target, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start was not refused: {stderr}");
    assert!(
        stderr.contains("connector data-to-process")
            && stderr.contains("no longer exists")
            && stderr.contains("--reset-checkpoints"),
        "{stderr}"
    );
    assert!(!data.join("endpoints.json").exists());

    let mut up = Up::start_with(tmp.path(), FAST, &target, &["--reset-checkpoints"]).await;
    send_and_deliver(&up, 100, 5).await;
    up.stop();
    // The reset positions are the new stream's: a plain start accepts them.
    let up = Up::start_with(tmp.path(), FAST, &target, &[]).await;
    send_and_deliver(&up, 200, 3).await;
}

/// A database whose pages were overwritten is refused at start, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let target = free_addr();
    let mut up = Up::start_with(tmp.path(), FAST, &target, &[]).await;
    send_and_deliver(&up, 0, 20).await;
    up.stop();
    let db = tmp.path().join("data").join("emulator.db");
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 8192, "{} bytes", bytes.len());
    // Pseudo-random bytes over everything after the first page (header and schema).
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut bytes[8192..] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&db, &bytes).unwrap();

    let out = up_to_exit(tmp.path(), &target, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the start was not refused: {stderr}");
    let db = std::fs::canonicalize(&db).unwrap();
    assert!(
        stderr.contains(&format!(
            "the emulator database {} is damaged",
            db.display()
        )) && stderr.contains("move"),
        "{stderr}"
    );
}

/// A damaged log database does not keep the stack from starting: it is moved aside with a
/// warning naming it, and the new one records the next messages' stories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_database_is_moved_aside_and_begun_afresh() {
    let tmp = tempfile::tempdir().unwrap();
    let target = free_addr();
    let mut up = Up::start_with(tmp.path(), FAST, &target, &[]).await;
    send_and_deliver(&up, 0, 3).await;
    up.stop();
    let data = tmp.path().join("data");
    std::fs::write(data.join("logs.db"), vec![0x5a; 64 * 1024]).unwrap();

    let log = tmp.path().join("up.log");
    let mut up = Up::start_logged(tmp.path(), FAST, &target, &[], &log, "warn").await;
    let (code, body) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&up.target(), "after", 7),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let story = eventually(Duration::from_secs(20), || async {
        let out = up.cli(&["trace", &id]).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("delivered").then_some(text)
    })
    .await;
    assert!(story.is_some(), "no story recorded for {id} after the move");
    up.stop();
    let aside: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("logs.db.damaged-"))
        .filter(|n| !n.ends_with("-wal") && !n.ends_with("-shm"))
        .collect();
    // With its -wal and -shm beside it.
    assert_eq!(aside.len(), 1, "{aside:?}");
    let bytes = std::fs::read(data.join(&aside[0])).unwrap();
    assert!(
        bytes.iter().all(|b| *b == 0x5a),
        "the damaged file is kept as it was"
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        stderr.contains("was damaged: moved aside") && stderr.contains(&aside[0]),
        "{stderr}"
    );
}

/// While the database refuses writes, a sync answers 503 with an OCI-style body, the status
/// page and `datasync status` say so, and both recover once writes succeed again. The refusal
/// is a trigger another connection installs, as a full disk would refuse them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_answers_503_and_is_shown_until_it_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let up = Up::start_in(tmp.path(), FAST, &[]).await;
    let data = tmp.path().join("data");
    send_and_deliver(&up, 0, 1).await;
    assert!(up.status().await.storage.writing);

    let db = rusqlite::Connection::open(data.join("emulator.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();
    let (code, body) = up
        .post(
            "/stream/sync",
            Some(&up.source_key()),
            &sync_request(&up.target(), "refused", 0),
        )
        .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    let status = up.status().await;
    let s = &status.storage;
    assert!(!s.writing && s.failed_writes >= 1, "{s:?}");
    assert!(
        s.last_failure
            .as_deref()
            .is_some_and(|w| w.contains("database or disk is full")),
        "{s:?}"
    );
    assert!(s.database.ends_with("emulator.db"), "{s:?}");
    let out = run_to_exit(
        ["status", "--data-dir", data.to_str().unwrap()],
        Duration::from_secs(30),
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("STORAGE FAILING"), "{text}");
    // What the page draws its red line from.
    let storage = up.status().await.storage;
    assert!(!storage.writing && storage.failed_writes > 0, "{storage:?}");

    db.execute_batch("DROP TRIGGER refuse").unwrap();
    send_and_deliver(&up, 1, 1).await;
    let s = up.status().await.storage;
    assert!(s.writing && s.failed_writes >= 1, "{s:?}");
}
