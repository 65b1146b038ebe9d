//! A running emulator per test, aborted on drop (the emulator's own tests have the full
//! helper set in `crates/emulator/tests/it/util.rs`).

use base64::Engine as _;
use datasync_core::oci::models;
use datasync_core::oci::signer::BodySigning;
use datasync_local::client::SignedClient;
use datasync_local::emulator::{Emulator, EmulatorOptions};
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
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::open(dir.path(), EmulatorOptions::default()).unwrap();
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

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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
            .client
            .send(
                Method::POST,
                &format!("/20180418/streams/{stream}/messages"),
                serde_json::to_vec(&details).unwrap(),
                BodySigning::Exclude,
                HeaderMap::new(),
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
}
