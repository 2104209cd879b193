//! TLS as a client of a MariaDB/MySQL server, per `ssl-mode`.

use std::sync::{Arc, Mutex};

use conf::{ServerTls, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use crate::files::{identity, FileError, Named};
use crate::provider;
use crate::x509::CertInfo;

/// The TLS side of one server connection (`[pump]`, `[syncer.to]`, a relay's
/// `[upstream]`): its mode, and the client configuration made from its files.
#[derive(Debug)]
pub struct ClientTls {
    settings: ServerTls,
    /// `None` with `ssl-mode = "disabled"`.
    config: Option<Arc<ClientConfig>>,
    /// With `verify-ca`, a name the server's certificate is for, learned from it once its
    /// chain checked out: the client library checks names always, so it is given one the
    /// certificate has (see [`crate::Server::session`]).
    pub(crate) learned_name: Mutex<Option<String>>,
    /// The certificates read (the CA's, this client's), by key, for `check-config`.
    pub certificates: Vec<(String, CertInfo)>,
}

impl ClientTls {
    /// Reads the files `settings` names (every one checked now: readable, PEM, in its
    /// validity period, the key that of the certificate).
    pub fn load(settings: &ServerTls) -> Result<ClientTls, FileError> {
        let mut certificates = Vec::new();
        let config = match settings.mode {
            SslMode::Disabled => None,
            mode => Some(Arc::new(client_config(settings, mode, &mut certificates)?)),
        };
        Ok(ClientTls {
            settings: settings.clone(),
            config,
            learned_name: Mutex::new(None),
            certificates,
        })
    }

    /// No TLS at all (`ssl-mode = "disabled"`).
    pub fn disabled(section: &'static str) -> ClientTls {
        ClientTls {
            settings: ServerTls {
                section,
                mode: SslMode::Disabled,
                ca: None,
                cert: None,
                key: None,
            },
            config: None,
            learned_name: Mutex::new(None),
            certificates: Vec::new(),
        }
    }

    pub fn mode(&self) -> SslMode {
        self.settings.mode
    }

    pub fn settings(&self) -> &ServerTls {
        &self.settings
    }

    pub(crate) fn config(&self) -> Option<&Arc<ClientConfig>> {
        self.config.as_ref()
    }
}

fn client_config(
    settings: &ServerTls,
    mode: SslMode,
    read: &mut Vec<(String, CertInfo)>,
) -> Result<ClientConfig, FileError> {
    let provider = provider();
    let section = settings.section;
    let key = |name: &str| format!("{section}.{name}");
    let webpki = match (&settings.ca, mode.verifies()) {
        (Some(ca), true) => {
            let ca_key = key("ssl-ca");
            let (roots, certs) = Named {
                key: &ca_key,
                path: ca,
            }
            .roots_and_certificates()?;
            read.extend(
                certs
                    .iter()
                    .filter_map(|c| Some((ca_key.clone(), CertInfo::parse(c)?))),
            );
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| FileError::Invalid {
                        key: ca_key.clone(),
                        path: ca.clone(),
                        what: format!("cannot verify with it: {e}"),
                    })?;
            Some(verifier)
        }
        // A verifying mode without a CA accepts nothing (validation refuses it earlier).
        (None, true) => {
            return Err(FileError::Invalid {
                key: key("ssl-ca"),
                path: std::path::PathBuf::new(),
                what: format!("is required by {section}.ssl-mode = {:?}", mode.as_str()),
            })
        }
        _ => None,
    };
    let verifier = Arc::new(ModeVerifier {
        mode,
        webpki,
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match (&settings.cert, &settings.key) {
        (Some(cert), Some(private)) => {
            let (cert_key, key_key) = (key("ssl-cert"), key("ssl-key"));
            let certified = identity(
                Named {
                    key: &cert_key,
                    path: cert,
                },
                Named {
                    key: &key_key,
                    path: private,
                },
                &provider,
            )?;
            if let Some(info) = certified
                .end_entity_cert()
                .ok()
                .and_then(|c| CertInfo::parse(c))
            {
                read.push((cert_key.clone(), info));
            }
            builder.with_client_cert_resolver(Arc::new(Identity(certified)))
        }
        _ => builder.with_no_client_auth(),
    })
}

/// This client's certificate, whatever the server asks.
#[derive(Debug)]
pub(crate) struct Identity(pub Arc<CertifiedKey>);

impl ResolvesClientCert for Identity {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Checks a server's certificate as `ssl-mode` says: not at all (`preferred`,
/// `required`: the handshake's signatures still are), its chain (`verify-ca`), its chain and
/// name (`verify-identity`).
#[derive(Debug)]
struct ModeVerifier {
    mode: SslMode,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ModeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode == SslMode::VerifyCa => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
