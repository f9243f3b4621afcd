//! Who may call the gRPC services: bearer tokens checked by tonic interceptors, and TLS (mutual
//! when a client CA is configured) on the gRPC servers.
//!
//! Two tokens, two audiences: the admin token opens `AdminService` only; the service token opens
//! `OrderService`, `VerificationService` and `DeliveryService` (game servers and our own
//! processes call those). The game server's token is a third, separate secret that delivery sends
//! (see `auth.game_server_token`). A process without a token runs that audience open and says so
//! at startup, which keeps the embedded default usable on a laptop.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::{Code, Request, Status};

use crate::settings::{AuthSettings, ConfigError, Token};
use crate::status::with_reason;

/// Checks `authorization: Bearer <token>` against one expected token. Without a token it lets
/// every call through.
#[derive(Clone)]
pub struct BearerCheck {
    audience: &'static str,
    /// SHA-256 of the expected token: comparing digests of equal length in constant time hides
    /// both the token and its length from timing.
    expected: Option<Arc<[u8; 32]>>,
}

impl fmt::Debug for BearerCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerCheck")
            .field("audience", &self.audience)
            .field("required", &self.expected.is_some())
            .finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl BearerCheck {
    /// A check for `audience` (named in errors and logs), open when `token` is `None`.
    pub fn new(audience: &'static str, token: Option<&Token>) -> Self {
        Self {
            audience,
            expected: token.map(|t| Arc::new(digest(t.expose().as_bytes()))),
        }
    }

    /// Lets every call through.
    pub fn open(audience: &'static str) -> Self {
        Self::new(audience, None)
    }

    /// Whether a token is required.
    pub fn is_required(&self) -> bool {
        self.expected.is_some()
    }

    /// Checks the request's metadata.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected else {
            return Ok(());
        };
        let refuse = |reason: &str, message: &str| {
            metrics::counter!("iap_grpc_auth_refused_total", "audience" => self.audience)
                .increment(1);
            with_reason(
                Code::Unauthenticated,
                reason,
                message.to_owned(),
                HashMap::from([("audience".to_owned(), self.audience.to_owned())]),
            )
        };
        let Some(header) = metadata.get("authorization") else {
            return Err(refuse(
                "BEARER_TOKEN_MISSING",
                "this service needs `authorization: Bearer <token>`",
            ));
        };
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .unwrap_or_default();
        if bool::from(digest(presented.as_bytes()).ct_eq(expected.as_ref())) {
            Ok(())
        } else {
            Err(refuse(
                "BEARER_TOKEN_INVALID",
                "the bearer token is not valid for this service",
            ))
        }
    }
}

impl Interceptor for BearerCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
}

/// The checks of one process's gRPC services.
#[derive(Debug, Clone)]
pub struct GrpcAuth {
    /// `AdminService`.
    pub admin: BearerCheck,
    /// `OrderService`, `VerificationService`, `DeliveryService`.
    pub service: BearerCheck,
}

impl Default for GrpcAuth {
    fn default() -> Self {
        Self {
            admin: BearerCheck::open("admin"),
            service: BearerCheck::open("service"),
        }
    }
}

impl GrpcAuth {
    /// The checks `auth.admin_token` and `auth.service_token` configure.
    pub fn from_settings(settings: &AuthSettings) -> Self {
        Self {
            admin: BearerCheck::new("admin", settings.admin_token.as_ref()),
            service: BearerCheck::new("service", settings.service_token.as_ref()),
        }
    }

    /// Logs a warning for each audience left open, once at startup.
    pub fn warn_if_open(&self, process: &str, serves_admin: bool) {
        if serves_admin && !self.admin.is_required() {
            tracing::warn!(
                process,
                "AdminService is open to anyone who can reach it: set auth.admin_token"
            );
        }
        if !self.service.is_required() {
            tracing::warn!(
                process,
                "OrderService, VerificationService and DeliveryService are open to anyone who can reach them: set auth.service_token"
            );
        }
    }
}

fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Value {
        key: key.to_owned(),
        problem: format!("cannot read {}: {e}", path.display()),
    })
}

/// TLS for the gRPC servers: the certificate and key, and with `auth.tls_client_ca_file` the
/// CA every client certificate must chain to (mutual TLS). `None` without a certificate.
pub fn server_tls(settings: &AuthSettings) -> Result<Option<ServerTlsConfig>, ConfigError> {
    let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) else {
        return Ok(None);
    };
    let identity = Identity::from_pem(
        read("auth.tls_cert_file", cert)?,
        read("auth.tls_key_file", key)?,
    );
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &settings.tls_client_ca_file {
        config = config.client_ca_root(Certificate::from_pem(read("auth.tls_client_ca_file", ca)?));
    }
    Ok(Some(config))
}

/// TLS for our own gRPC clients (verifier and scheduler → delivery) when their URL is
/// `https://`: trust `auth.tls_server_ca_file`, and present this process's certificate, which a
/// server requiring client certificates checks.
pub fn client_tls(settings: &AuthSettings) -> Result<ClientTlsConfig, ConfigError> {
    let mut config = ClientTlsConfig::new();
    match &settings.tls_server_ca_file {
        Some(ca) => {
            config =
                config.ca_certificate(Certificate::from_pem(read("auth.tls_server_ca_file", ca)?));
        }
        None => {
            return Err(ConfigError::Value {
                key: "auth.tls_server_ca_file".to_owned(),
                problem: "is required to call an https:// gRPC URL".to_owned(),
            });
        }
    }
    if let (Some(cert), Some(key)) = (&settings.tls_cert_file, &settings.tls_key_file) {
        config = config.identity(Identity::from_pem(
            read("auth.tls_cert_file", cert)?,
            read("auth.tls_key_file", key)?,
        ));
    }
    Ok(config)
}

/// Adds `authorization: Bearer <token>` to an outgoing request.
pub fn attach_bearer<T>(request: &mut Request<T>, token: Option<&Token>) -> Result<(), String> {
    if let Some(token) = token {
        let value = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| "the token is not a valid header value".to_owned())?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    fn metadata(header: Option<&str>) -> MetadataMap {
        let mut map = MetadataMap::new();
        if let Some(h) = header {
            map.insert("authorization", h.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens_are_required_once_configured() {
        let token = Token::new("correct horse battery staple");
        let check = BearerCheck::new("admin", Some(&token));
        assert!(
            check
                .check(&metadata(Some("Bearer correct horse battery staple")))
                .is_ok()
        );
        for (header, reason) in [
            (None, "BEARER_TOKEN_MISSING"),
            (Some("Bearer wrong"), "BEARER_TOKEN_INVALID"),
            (
                Some("Basic correct horse battery staple"),
                "BEARER_TOKEN_INVALID",
            ),
            (Some("Bearer "), "BEARER_TOKEN_INVALID"),
        ] {
            let status = check.check(&metadata(header)).unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated);
            assert_eq!(status.get_details_error_info().unwrap().reason, reason);
            assert!(!status.message().contains("staple"));
        }
        assert!(BearerCheck::open("admin").check(&metadata(None)).is_ok());
        assert!(!format!("{check:?}").contains("staple"));
    }
}
