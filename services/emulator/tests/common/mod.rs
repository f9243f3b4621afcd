//! An emulator served in-process on port 0, and a client for its control API.

// Each test binary uses a different part of this harness.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

pub(crate) struct Emulator {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Emulator {
    pub(crate) async fn start() -> Self {
        Self::start_with(iap_emulator::EmulatorConfig::default()).await
    }

    pub(crate) async fn start_with(config: iap_emulator::EmulatorConfig) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(iap_emulator::serve(listener, config, async {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            base,
            http,
            _shutdown: tx,
        }
    }

    pub(crate) async fn control(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/emulator{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/emulator{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}
