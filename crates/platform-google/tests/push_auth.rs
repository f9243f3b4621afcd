//! Authenticated Pub/Sub push: a Google-style OIDC token (RS256, `kid` from a JWKS endpoint) is
//! accepted only with the right signature, issuer, audience, expiry and service account.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iap_domain::notifications::{DecodedNotification, NotificationDecoder};
use iap_domain::ports::StoreError;
use iap_domain::{AppId, RejectReason};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::json;

const PACKAGE: &str = "com.example.game";
const AUDIENCE: &str = "https://iap.example.com/notifications/google";
const PUSHER: &str = "rtdn-push@example.iam.gserviceaccount.com";

struct Signer {
    pem: String,
    kid: String,
}

impl Signer {
    fn token(&self, claims: &serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn claims(aud: &str, email: &str, exp_offset: i64) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({ "iss": "https://accounts.google.com", "aud": aud, "email": email,
        "email_verified": true, "iat": now, "exp": now + exp_offset, "sub": "1234" })
}

/// Serves `{"keys": [...]}` for the generated key; returns its URL.
async fn jwks(key: &rsa::RsaPrivateKey, kid: &str) -> String {
    let public = key.to_public_key();
    let body = json!({ "keys": [{ "kid": kid, "kty": "RSA", "alg": "RS256", "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()) }] });
    let app = axum::Router::new().route(
        "/certs",
        axum::routing::get(move || {
            let body = body.clone();
            async move { axum::Json(body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/certs", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn push_body() -> String {
    let data = base64::engine::general_purpose::STANDARD.encode(
        json!({ "version": "1.0", "packageName": PACKAGE, "eventTimeMillis": "1",
            "testNotification": { "version": "1.0" } })
        .to_string(),
    );
    json!({ "message": { "data": data, "messageId": "77" }, "subscription": "s" }).to_string()
}

fn verifier(certs_url: Option<&str>, sa_pem: &str) -> iap_platform_google::GoogleVerifier {
    let account = json!({ "client_email": "api@example.iam.gserviceaccount.com",
        "private_key": sa_pem, "token_uri": "http://127.0.0.1:9/token" });
    let mut config =
        json!({ "package_name": PACKAGE, "service_account_json": account.to_string() });
    if let Some(url) = certs_url {
        config["push_audience"] = json!(AUDIENCE);
        config["push_service_account"] = json!(PUSHER);
        config["push_certs_url"] = json!(url);
    }
    let config: iap_platform_google::GoogleAppConfig = serde_json::from_value(config).unwrap();
    let app = AppId::parse(PACKAGE).unwrap();
    iap_platform_google::GoogleVerifier::new([(&app, &config)]).unwrap()
}

fn code(result: Result<(), StoreError>) -> &'static str {
    match result {
        Err(StoreError::Rejected { reason, code, .. }) => {
            assert_eq!(reason, RejectReason::SignatureInvalid);
            code
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn pushes_must_carry_a_valid_google_oidc_token_when_configured() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut rng = rand::thread_rng();
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let signer = Signer {
        pem: pem.clone(),
        kid: "key-1".into(),
    };
    let certs = jwks(&key, "key-1").await;
    let strict = verifier(Some(&certs), &pem);
    let decoded: DecodedNotification = strict.decode(&push_body()).await.unwrap();
    let bearer = |t: String| format!("Bearer {t}");

    let good = bearer(signer.token(&claims(AUDIENCE, PUSHER, 300)));
    strict.authenticate(&decoded, Some(&good)).await.unwrap();

    assert_eq!(
        code(strict.authenticate(&decoded, None).await),
        "push_token_missing"
    );
    let wrong_audience = bearer(signer.token(&claims("https://elsewhere", PUSHER, 300)));
    assert_eq!(
        code(strict.authenticate(&decoded, Some(&wrong_audience)).await),
        "push_token_invalid"
    );
    let expired = bearer(signer.token(&claims(AUDIENCE, PUSHER, -600)));
    assert_eq!(
        code(strict.authenticate(&decoded, Some(&expired)).await),
        "push_token_invalid"
    );
    let stranger = bearer(signer.token(&claims(AUDIENCE, "someone@example.com", 300)));
    assert_eq!(
        code(strict.authenticate(&decoded, Some(&stranger)).await),
        "push_token_wrong_account"
    );
    // Signed by another key under a known key id: the signature fails.
    let other = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let forger = Signer {
        pem: other.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        kid: "key-1".into(),
    };
    let forged = bearer(forger.token(&claims(AUDIENCE, PUSHER, 300)));
    assert_eq!(
        code(strict.authenticate(&decoded, Some(&forged)).await),
        "push_token_invalid"
    );
    let unknown_kid = Signer {
        pem: pem.clone(),
        kid: "key-9".into(),
    };
    let unknown = bearer(unknown_kid.token(&claims(AUDIENCE, PUSHER, 300)));
    assert_eq!(
        code(strict.authenticate(&decoded, Some(&unknown)).await),
        "push_token_unknown_key"
    );

    // Without push settings, the push is not required to carry a token.
    let open = verifier(None, &pem);
    let decoded = open.decode(&push_body()).await.unwrap();
    open.authenticate(&decoded, None).await.unwrap();
}
