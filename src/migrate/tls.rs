//! TLS to Postgres with libpq's `sslmode` semantics (SPEC §4).
//!
//! sqlx's own TLS differs from libpq where it matters to an operator:
//! `verify-ca` also checks the hostname, a self-signed server certificate
//! given as `sslrootcert` is refused (`CaUsedAsEndEntity`), `allow` never
//! tries TLS, and a certificate error looks like "not reachable". So for the
//! modes that verify, we make the TLS connection ourselves and hand sqlx a
//! plain stream to it through a one-connection loopback bridge; `disable`,
//! `prefer` and `require` without a root certificate (no verification in
//! libpq either) stay with sqlx.
//!
//! libpq's rules, as followed here:
//! - `verify-ca`: the chain must lead to `sslrootcert`; any hostname.
//! - `verify-full`: the same, and the certificate names the host.
//! - `require` / `prefer` with an `sslrootcert` file that exists: as
//!   `verify-ca` (libpq verifies whenever it has a root certificate).
//! - A server certificate that is itself in `sslrootcert` is trusted as is
//!   (OpenSSL's behaviour for a pinned self-signed certificate).
//! - `allow`: plain first; TLS when the server refuses unencrypted clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sqlx::postgres::PgSslMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::DatabaseUrl;

/// Problems with TLS that no retry can mend.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file named in the URL (or PGSSL*) is missing or bad: 78.
    #[error("{key} {}: {problem}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        problem: FileProblem,
    },
    /// sslmode says verify, and there is nothing to verify against: 78.
    #[error("sslmode={mode} needs sslrootcert (the CA certificate, or the server's own self-signed one)")]
    NoRootCert { mode: &'static str },
    #[error("the server does not accept TLS, and sslmode={mode} requires it")]
    NotOffered { mode: &'static str },
    /// The server's certificate did not pass: 69, at once.
    #[error("the server's certificate was refused ({reason}); checked against sslrootcert {}", root.display())]
    Refused { reason: String, root: PathBuf },
}

/// What is wrong with a certificate or key file.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    #[error("does not exist")]
    Missing,
    #[error("{0}")]
    Unreadable(#[source] std::io::Error),
    #[error("not a PEM file: {0}")]
    NotPem(#[source] rustls::pki_types::pem::Error),
    #[error("holds no certificate")]
    NoCertificate,
    #[error("unusable: {0}")]
    Unusable(#[source] rustls::Error),
    #[error("unusable: {0}")]
    NoVerifier(#[source] rustls::client::VerifierBuilderError),
    #[error("given without {0}")]
    Alone(&'static str),
}

impl TlsError {
    pub fn is_config(&self) -> bool {
        matches!(self, TlsError::File { .. } | TlsError::NoRootCert { .. })
    }
}

/// What the URL (or PGSSLMODE, PGSSLROOTCERT, …) asks for.
pub struct Settings {
    pub mode: PgSslMode,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// How the connection is to be made.
pub enum Plan {
    /// sqlx connects as it would (no verification involved).
    Sqlx,
    /// Plain first, TLS without verification if the server insists.
    PlainThenTls,
    /// We make and verify the TLS connection.
    Verified(Arc<rustls::ClientConfig>),
}

impl Settings {
    /// `mode` is sqlx's reading of the URL; the file parameters are read
    /// from the query string, else from libpq's environment variables.
    pub fn read(mode: PgSslMode, url: &DatabaseUrl) -> Settings {
        let param = |name: &str, var: &str| {
            url.parameter(name)
                .map(PathBuf::from)
                .or_else(|| std::env::var_os(var).map(PathBuf::from))
        };
        Settings {
            mode,
            root_cert: param("sslrootcert", "PGSSLROOTCERT"),
            client_cert: param("sslcert", "PGSSLCERT"),
            client_key: param("sslkey", "PGSSLKEY"),
        }
    }

    pub fn plan(&self) -> Result<Plan, TlsError> {
        let name = mode_name(self.mode);
        let verifies = matches!(self.mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull);
        let root = match &self.root_cert {
            Some(path) if path.exists() => Some(path.clone()),
            Some(path) if verifies => {
                return Err(TlsError::File {
                    key: "sslrootcert",
                    path: path.clone(),
                    problem: FileProblem::Missing,
                })
            }
            Some(path) => {
                tracing::warn!(path = %path.display(), "sslrootcert does not exist: the server's certificate is not verified (as libpq does)");
                None
            }
            None if verifies => return Err(TlsError::NoRootCert { mode: name }),
            None => None,
        };
        match (self.mode, root) {
            (PgSslMode::Disable, _) => Ok(Plan::Sqlx),
            (PgSslMode::Allow, _) => Ok(Plan::PlainThenTls),
            (_, None) => Ok(Plan::Sqlx),
            (mode, Some(root)) => Ok(Plan::Verified(
                self.client_config(&root, matches!(mode, PgSslMode::VerifyFull))?,
            )),
        }
    }

    fn client_config(&self, root: &Path, check_hostname: bool) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let file_error = |key: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |problem| TlsError::File { key, path, problem }
        };
        let root_error = || file_error("sslrootcert", root);
        let pem = std::fs::read(root)
            .map_err(FileProblem::Unreadable)
            .map_err(root_error())?;
        let roots: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(FileProblem::NotPem)
            .map_err(root_error())?;
        if roots.is_empty() {
            return Err(root_error()(FileProblem::NoCertificate));
        }
        let mut store = rustls::RootCertStore::empty();
        for cert in &roots {
            store
                .add(cert.clone())
                .map_err(FileProblem::Unusable)
                .map_err(root_error())?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(FileProblem::NoVerifier)
            .map_err(root_error())?;
        let verifier = Arc::new(LibpqVerifier {
            webpki,
            pinned: roots,
            check_hostname,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(FileProblem::Unusable)
            .map_err(root_error())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = std::fs::read(cert)
                    .map_err(FileProblem::Unreadable)
                    .and_then(|pem| {
                        CertificateDer::pem_slice_iter(&pem)
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(FileProblem::NotPem)
                    })
                    .map_err(file_error("sslcert", cert))?;
                let private = std::fs::read(key)
                    .map_err(FileProblem::Unreadable)
                    .and_then(|pem| PrivateKeyDer::from_pem_slice(&pem).map_err(FileProblem::NotPem))
                    .map_err(file_error("sslkey", key))?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(FileProblem::Unusable)
                    .map_err(file_error("sslcert", cert))?
            }
            (Some(cert), None) => return Err(file_error("sslcert", cert)(FileProblem::Alone("sslkey"))),
            (None, Some(key)) => return Err(file_error("sslkey", key)(FileProblem::Alone("sslcert"))),
            (None, None) => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    pub fn root(&self) -> PathBuf {
        self.root_cert.clone().unwrap_or_default()
    }

    pub fn mode_name(&self) -> &'static str {
        mode_name(self.mode)
    }
}

/// Connects to `host:port`, asks for TLS (SSLRequest) and verifies the
/// server our way; returns the port of a loopback bridge that carries one
/// plain connection (sqlx's) over it.
pub async fn bridge(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    settings: &Settings,
) -> Result<u16, sqlx::Error> {
    let mut tcp = TcpStream::connect((host, port)).await?;
    // SSLRequest: length 8, code 80877103.
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
    if tcp.read_u8().await? != b'S' {
        return Err(sqlx::Error::Tls(Box::new(TlsError::NotOffered {
            mode: settings.mode_name(),
        })));
    }
    let name = ServerName::try_from(host.to_string()).map_err(|err| sqlx::Error::Tls(Box::new(err)))?;
    let tls = match tokio_rustls::TlsConnector::from(config).connect(name, tcp).await {
        Ok(tls) => tls,
        Err(err) => {
            let refused = err
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(|tls| tls.to_string());
            return Err(match refused {
                Some(reason) => sqlx::Error::Tls(Box::new(TlsError::Refused {
                    reason,
                    root: settings.root(),
                })),
                None => sqlx::Error::Io(err),
            });
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let bridge_port = listener.local_addr()?.port();
    tokio::spawn(async move {
        // One connection only, and only for a moment: sqlx connects at once.
        let accepted = tokio::time::timeout(std::time::Duration::from_secs(10), listener.accept()).await;
        drop(listener);
        if let Ok(Ok((mut plain, _))) = accepted {
            let mut tls = tls;
            let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
        }
    });
    Ok(bridge_port)
}

/// libpq's verification (see the module's doc).
#[derive(Debug)]
struct LibpqVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    check_hostname: bool,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref()) {
            if self.check_hostname {
                let cert = webpki::EndEntityCert::try_from(end_entity)
                    .map_err(|err| rustls::Error::General(format!("unreadable certificate: {err}")))?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
            }
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
