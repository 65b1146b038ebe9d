//! `datasync oci raw-request` as an operator runs it: signed with the profile's key, against the
//! local emulator (which verifies signatures as OCI does).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Output, Stdio};

struct Emulator {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn emulator() -> Emulator {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_datasync"))
        .args(["emulator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("listening on ")
        .expect(&first)
        .to_owned();
    std::thread::spawn(move || for _ in lines {});
    Emulator { child, base, dir }
}

fn raw(emu: &Emulator, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_datasync"))
        .args(["oci", "raw-request", "--profile", "LOCAL", "--config-file"])
        .arg(emu.dir.path().join("config"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn signed_requests_reach_the_service_and_errors_show_code_and_request_id() {
    let emu = emulator();
    let create = r#"{"name":"orders","partitions":1,"compartmentId":"ocid1.tenancy.oc1..aaaaaaaalocaltenancy","retentionInHours":24}"#;
    let out = raw(
        &emu,
        &[
            "--method",
            "POST",
            "--url",
            &format!("{}/20180418/streams", emu.base),
            "--body",
            "-",
        ],
        Some(create),
    );
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.starts_with("status: 200\nopc-request-id: "),
        "{printed}"
    );
    let body: serde_json::Value =
        serde_json::from_str(printed.split_once("\n\n").unwrap().1).unwrap();
    assert_eq!(body["name"], "orders");
    let id = body["id"].as_str().unwrap().to_owned();

    let out = raw(
        &emu,
        &[
            "--method",
            "get",
            "--url",
            &format!("{}/20180418/streams/{id}", emu.base),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("\"messagesEndpoint\""));

    let out = raw(
        &emu,
        &[
            "--method",
            "GET",
            "--url",
            &format!("{}/20180418/streams/ocid1.stream.oc1.local.nope", emu.base),
        ],
        None,
    );
    assert!(!out.status.success());
    let printed = text(&out);
    assert!(
        printed.starts_with("status: 404\nopc-request-id: "),
        "{printed}"
    );
    assert!(
        printed.contains(r#""code":"NotAuthorizedOrNotFound""#),
        "{printed}"
    );
}

#[test]
fn unsigned_requests_are_refused_by_the_same_endpoint() {
    let emu = emulator();
    let addr = emu.base.trim_start_matches("http://");
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write!(socket, "GET /20180418/streams?compartmentId=x HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("NotAuthenticated"), "{answer}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let emu = emulator();
    let out = Command::new(env!("CARGO_BIN_EXE_datasync"))
        .args([
            "oci",
            "raw-request",
            "--method",
            "GET",
            "--url",
            &emu.base,
            "--profile",
            "NOPE",
            "--config-file",
        ])
        .arg(emu.dir.path().join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let printed = text(&out);
    assert!(printed.contains("profile NOPE not found in"), "{printed}");

    let out = Command::new(env!("CARGO_BIN_EXE_datasync"))
        .args([
            "oci",
            "raw-request",
            "--method",
            "GET",
            "--url",
            &emu.base,
            "--config-file",
            "/nonexistent/oci/config",
        ])
        .output()
        .unwrap();
    assert!(
        text(&out).contains("cannot read OCI config file /nonexistent/oci/config"),
        "{}",
        text(&out)
    );
}
