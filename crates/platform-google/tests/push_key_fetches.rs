//! Google's push keys are fetched outside the lock that pushes read them under, and at most once
//! per `MIN_REFETCH_INTERVAL`: pushes signed with a cached key never wait for a slow fetch, and a
//! flood of pushes naming unknown key ids (anyone can send them) does not make one fetch each.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iap_domain::ports::StoreError;
use iap_platform_google::push::PushAuth;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::json;

const AUDIENCE: &str = "https://iap.example.com/notifications/google";
const PUSHER: &str = "rtdn-push@example.iam.gserviceaccount.com";
/// How long the key server takes to answer after its first answer.
const SLOW_FETCH: Duration = Duration::from_millis(1_500);
/// The shortest time between fetches, shortened from the production 30 s.
const REFETCH_INTERVAL: Duration = Duration::from_millis(300);

fn token(pem: &str, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({ "iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSHER,
        "email_verified": true, "iat": now, "exp": now + 300, "sub": "1234" });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
    format!(
        "Bearer {}",
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    )
}

/// A JWKS endpoint for `key` under `kid` that counts its fetches and answers slowly after the
/// first.
async fn counting_jwks(key: &rsa::RsaPrivateKey, kid: &str) -> (String, Arc<AtomicUsize>) {
    let public = key.to_public_key();
    let body = json!({ "keys": [{ "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()) }] });
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let (body, counter) = (body.clone(), counter.clone());
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) > 0 {
                    tokio::time::sleep(SLOW_FETCH).await;
                }
                axum::Json(body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, fetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_key_ids_neither_block_pushes_nor_fetch_per_push() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let (certs, fetches) = counting_jwks(&key, "key-1").await;
    let auth = Arc::new(
        PushAuth::new(
            AUDIENCE.into(),
            Some(PUSHER.into()),
            certs,
            reqwest::Client::new(),
        )
        .with_refetch_interval(REFETCH_INTERVAL),
    );
    let good = token(&pem, "key-1");
    auth.verify(Some(&good)).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    // Within the interval an unknown key id is refused without asking Google.
    let forged = token(&pem, "forged");
    assert!(auth.verify(Some(&forged)).await.is_err());
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(REFETCH_INTERVAL * 2).await;

    // Fifty pushes naming key ids Google never published, at once.
    let flood: Vec<_> = (0..50)
        .map(|n| {
            let (auth, forged) = (auth.clone(), token(&pem, &format!("forged-{n}")));
            tokio::spawn(async move { auth.verify(Some(&forged)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Meanwhile a real push, signed with the cached key, is checked without waiting for Google.
    let started = Instant::now();
    auth.verify(Some(&good)).await.unwrap();
    assert!(
        started.elapsed() < SLOW_FETCH / 2,
        "a push with a cached key waited {:?} for a key fetch",
        started.elapsed()
    );
    for push in flood {
        match push.await.unwrap() {
            Err(StoreError::Rejected { code, .. }) => assert_eq!(code, "push_token_unknown_key"),
            other => panic!("an unknown key id must be refused, got {other:?}"),
        }
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one refetch for the whole flood"
    );
}
