//! A running emulator per test, aborted on drop.

use base64::Engine as _;
use datasync_core::oci::models;
use datasync_core::oci::signer::BodySigning;
use datasync_emulator::client::{Answer, SignedClient};
use datasync_emulator::{Emulator, EmulatorOptions};
use http::{HeaderMap, Method};
use tokio_util::sync::CancellationToken;

pub struct Running {
    pub emulator: Emulator,
    pub base: String,
    pub client: SignedClient,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start() -> Running {
    start_with(EmulatorOptions::default()).await
}

pub async fn start_with(options: EmulatorOptions) -> Running {
    start_in(tempfile::tempdir().unwrap(), options).await
}

/// An emulator on the data directory `dir`, which may hold an earlier emulator's data.
pub async fn start_in(dir: tempfile::TempDir, options: EmulatorOptions) -> Running {
    let emulator = Emulator::open(dir.path(), options).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let serving = emulator.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move { serving.serve(listener, stop).await.unwrap() });
    let client = SignedClient::for_profile(&base, emulator.profile()).unwrap();
    Running {
        emulator,
        base,
        client,
        dir,
        shutdown,
    }
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Asserts an OCI error answer: status, code, and an opc-request-id.
pub fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(
        answer.status.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(&answer.body)
    );
    let body: models::ErrorBody = answer.json().unwrap();
    assert_eq!(body.code, code, "message: {}", body.message);
    assert!(answer.header("opc-request-id").is_some());
}

impl Running {
    pub async fn create_stream(&self, name: &str, partitions: i32) -> models::Stream {
        let answer = self
            .client
            .json(
                Method::POST,
                "/20180418/streams",
                &models::CreateStreamDetails {
                    name: name.into(),
                    partitions,
                    compartment_id: Some(self.emulator.profile().compartment.clone()),
                    retention_in_hours: Some(24),
                    stream_pool_id: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json().unwrap()
    }

    /// PutMessages signed without the body, as the SDKs sign it.
    pub async fn put_raw(&self, stream: &str, body: Vec<u8>) -> Answer {
        self.client
            .send(
                Method::POST,
                &format!("/20180418/streams/{stream}/messages"),
                body,
                BodySigning::Exclude,
                HeaderMap::new(),
            )
            .await
            .unwrap()
    }

    pub async fn put(
        &self,
        stream: &str,
        messages: &[(Option<&[u8]>, &[u8])],
    ) -> models::PutMessagesResult {
        let details = models::PutMessagesDetails {
            messages: messages
                .iter()
                .map(|(k, v)| models::PutMessagesDetailsEntry {
                    key: k.map(b64),
                    value: b64(v),
                })
                .collect(),
        };
        let answer = self
            .put_raw(stream, serde_json::to_vec(&details).unwrap())
            .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json().unwrap()
    }

    pub async fn cursor(&self, stream: &str, details: &models::CreateCursorDetails) -> String {
        let answer = self
            .client
            .json(
                Method::POST,
                &format!("/20180418/streams/{stream}/cursors"),
                details,
            )
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json::<models::Cursor>().unwrap().value
    }

    pub async fn get_messages(
        &self,
        stream: &str,
        cursor: &str,
        limit: Option<i64>,
    ) -> (Vec<models::Message>, String) {
        let mut path = format!("/20180418/streams/{stream}/messages?cursor={cursor}");
        if let Some(limit) = limit {
            path.push_str(&format!("&limit={limit}"));
        }
        let answer = self.client.get(&path).await.unwrap();
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let next = answer
            .header("opc-next-cursor")
            .expect("opc-next-cursor is always set")
            .to_owned();
        (answer.json().unwrap(), next)
    }
}

pub fn partition_cursor(
    partition: &str,
    kind: models::CursorType,
    offset: Option<i64>,
) -> models::CreateCursorDetails {
    models::CreateCursorDetails {
        partition: partition.into(),
        cursor_type: kind,
        offset,
        time: None,
    }
}
