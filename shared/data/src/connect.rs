//! Opening one PostgreSQL connection from `DATABASE_URL`, with TLS as its `sslmode` asks, in
//! libpq's terms, so that the URL an operator writes for `psql` works here too:
//!
//! | `sslmode` | TLS | server certificate |
//! | --- | --- | --- |
//! | unset, `disable` | no | - |
//! | `require` | yes | not verified; verified like `verify-ca` when `sslrootcert` is given |
//! | `verify-ca` | yes | chain verified against `sslrootcert` |
//! | `verify-full` | yes | chain verified against `sslrootcert`, and it must name the host (DNS name or IP address) |
//!
//! `sslrootcert` is the path of a PEM file of CA certificates; `verify-ca` and `verify-full`
//! need it (Cloud SQL's server CA is not in any public trust store). `prefer` and `allow` are
//! refused: they would silently fall back to plaintext. tokio-postgres itself knows only
//! `disable`, `prefer` and `require`, so both parameters are taken out of the URL here and the
//! rest is handed to it unchanged. TLS is rustls on aws-lc-rs, the provider the Google clients
//! already link, so the static binaries carry no OpenSSL.

use std::str::FromStr;
use std::sync::Arc;

use diesel::ConnectionResult;
use diesel_async::AsyncPgConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a `DATABASE_URL` cannot be used. Never quotes the URL, which holds a password.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("sslmode={0} is not supported: use disable, require, verify-ca or verify-full")]
    UnsupportedSslMode(String),
    #[error("sslmode={0} needs sslrootcert, the path of a PEM file of CA certificates")]
    RootCertRequired(&'static str),
    #[error("sslrootcert {path} cannot be used: {reason}")]
    RootCert { path: String, reason: String },
    #[error("it is not a PostgreSQL URL tokio-postgres accepts")]
    Unparseable(#[source] tokio_postgres::Error),
    #[error("TLS cannot be set up")]
    Tls(#[source] rustls::Error),
}

/// How to reach the database: the parsed URL and the TLS it asks for. Cheap to clone.
#[derive(Clone)]
pub struct ConnectOptions {
    config: tokio_postgres::Config,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the password.
        f.debug_struct("ConnectOptions").field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndName,
}

impl ConnectOptions {
    /// Reads `url` (`postgres://…` or `postgresql://…`), reading any `sslrootcert` file now,
    /// so that a bad one stops start-up rather than every connection.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
        let mut mode = None;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = || percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
            match key {
                "sslmode" => mode = Some(decoded()),
                "sslrootcert" => root_cert = Some(decoded()),
                _ => rest.push(pair),
            }
        }
        let verify = match mode.as_deref() {
            None | Some("disable") => None,
            Some("require") if root_cert.is_none() => Some(Verify::Nothing),
            Some("require" | "verify-ca") => Some(Verify::Chain),
            Some("verify-full") => Some(Verify::ChainAndName),
            Some(other) => return Err(UrlError::UnsupportedSslMode(other.to_owned())),
        };
        let stripped = if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) };
        let mut config = tokio_postgres::Config::from_str(&stripped).map_err(UrlError::Unparseable)?;
        let tls = match verify {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            Some(verify) => {
                // Refuse a server that does not speak TLS rather than fall back to plaintext.
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let roots = match (&root_cert, verify) {
                    (Some(path), _) => Some(read_roots(path)?),
                    (None, Verify::Nothing) => None,
                    (None, Verify::Chain) => return Err(UrlError::RootCertRequired("verify-ca")),
                    (None, Verify::ChainAndName) => return Err(UrlError::RootCertRequired("verify-full")),
                };
                Some(Arc::new(client_config(verify, roots)?))
            }
        };
        Ok(Self { config, tls })
    }

    /// True when connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection.
    pub async fn establish(&self) -> ConnectionResult<AsyncPgConnection> {
        let failed = |e: tokio_postgres::Error| diesel::ConnectionError::BadConnection(e.to_string());
        match &self.tls {
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await.map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
            Some(tls) => {
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = self.config.connect(connector).await.map_err(failed)?;
                AsyncPgConnection::try_from_client_and_connection(client, connection).await
            }
        }
    }
}

fn read_roots(path: &str) -> Result<RootCertStore, UrlError> {
    let refused = |reason: String| UrlError::RootCert { path: path.to_owned(), reason };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| refused(e.to_string()))? {
        roots.add(cert.map_err(|e| refused(e.to_string()))?).map_err(|e| refused(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(refused("it holds no certificate".into()));
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_config(verify: Verify, roots: Option<RootCertStore>) -> Result<rustls::ClientConfig, UrlError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(UrlError::Tls)?;
    let verifier: Arc<dyn ServerCertVerifier> = match roots {
        None => Arc::new(AnyCertificate(provider())),
        Some(roots) => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| UrlError::Tls(rustls::Error::General(e.to_string())))?;
            match verify {
                Verify::ChainAndName => webpki,
                _ => Arc::new(ChainOnly(webpki)),
            }
        }
    };
    Ok(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
}

/// `verify-ca`: the chain must lead to a trusted root; the name the certificate is for is not
/// checked (webpki checks the chain first, so a name error means the chain was good).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without `sslrootcert`: encrypted, but any certificate is accepted (libpq's
/// meaning of `require`). The handshake signature is still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_pass_through() {
        let options = ConnectOptions::parse("postgres://u:p@h:5432/db?application_name=x").expect("valid");
        assert!(!options.uses_tls());
        assert_eq!(options.config.get_application_name(), Some("x"));
        assert!(!ConnectOptions::parse("postgres://u@/db?host=/cloudsql/p:r:i").expect("valid").uses_tls());
        assert!(!ConnectOptions::parse("postgres://u@h/db?sslmode=disable").expect("valid").uses_tls());
    }

    #[test]
    fn tls_modes() {
        assert!(ConnectOptions::parse("postgres://u@h/db?sslmode=require").expect("valid").uses_tls());
        for mode in ["prefer", "allow", "verify", ""] {
            let err = ConnectOptions::parse(&format!("postgres://u:secret@h/db?sslmode={mode}")).expect_err(mode);
            assert!(err.to_string().contains("not supported") && !err.to_string().contains("secret"), "{err}");
        }
        for mode in ["verify-ca", "verify-full"] {
            let err = ConnectOptions::parse(&format!("postgres://u@h/db?sslmode={mode}")).expect_err(mode);
            assert!(err.to_string().contains("needs sslrootcert"), "{err}");
        }
        let missing = ConnectOptions::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent%2Fca.pem")
            .expect_err("no such file");
        assert!(missing.to_string().contains("/nonexistent/ca.pem"), "{missing}");
    }
}
