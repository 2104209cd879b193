//! Certificates, keys and CAs read from PEM files, each error naming the configuration
//! key and the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};

use crate::x509::{utc, CertInfo};

/// A TLS file that cannot be used, named by its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{key} = {path:?}: cannot read it: {source}")]
    Unreadable {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} = {path:?}: {what}")]
    Invalid {
        key: String,
        path: PathBuf,
        what: String,
    },
    #[error("{key} = {path:?}: {info}: expired on {}", utc(info.not_after))]
    Expired {
        key: String,
        path: PathBuf,
        info: Box<CertInfo>,
    },
    #[error("{key} = {path:?}: {info}: not valid before {}", utc(info.not_before))]
    NotYetValid {
        key: String,
        path: PathBuf,
        info: Box<CertInfo>,
    },
    #[error(
        "{key_key} = {key_path:?} is not the private key of {cert_key} = {cert_path:?}: {why}"
    )]
    KeyMismatch {
        cert_key: String,
        cert_path: PathBuf,
        key_key: String,
        key_path: PathBuf,
        why: String,
    },
}

/// One TLS file and the key that names it (`pump.ssl-ca`, `tls.cert`).
#[derive(Debug, Clone, Copy)]
pub struct Named<'a> {
    pub key: &'a str,
    pub path: &'a Path,
}

impl Named<'_> {
    fn invalid(&self, what: impl Into<String>) -> FileError {
        FileError::Invalid {
            key: self.key.to_owned(),
            path: self.path.to_owned(),
            what: what.into(),
        }
    }

    fn read(&self) -> Result<Vec<u8>, FileError> {
        std::fs::read(self.path).map_err(|source| FileError::Unreadable {
            key: self.key.to_owned(),
            path: self.path.to_owned(),
            source,
        })
    }

    /// Every certificate of the file, in order; at least one, each valid now.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, FileError> {
        let certs = self.pem_certificates()?;
        for cert in &certs {
            self.valid_now(cert)?;
        }
        Ok(certs)
    }

    /// Every certificate of the file, whatever its validity; at least one.
    fn pem_certificates(&self) -> Result<Vec<CertificateDer<'static>>, FileError> {
        let text = self.read()?;
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_slice_iter(&text) {
            certs.push(cert.map_err(|e| self.invalid(format!("not PEM: {}", pem_error(&e))))?);
        }
        if certs.is_empty() {
            return Err(self.invalid("holds no PEM certificate (BEGIN CERTIFICATE)"));
        }
        Ok(certs)
    }

    /// The CAs of the file, as roots to verify against.
    pub fn roots(&self) -> Result<RootCertStore, FileError> {
        self.roots_and_certificates().map(|(roots, _)| roots)
    }

    /// The CAs of the file as roots, and the certificates themselves.
    pub fn roots_and_certificates(
        &self,
    ) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), FileError> {
        // A CA file may hold an old CA next to its successor (a rotation): the expired
        // ones are left out, as long as one is valid.
        let mut certs = Vec::new();
        let mut expired = None;
        for cert in self.pem_certificates()? {
            match self.valid_now(&cert) {
                Ok(()) => certs.push(cert),
                Err(e) => {
                    expired.get_or_insert(e);
                }
            }
        }
        if let (true, Some(e)) = (certs.is_empty(), expired) {
            return Err(e);
        }
        let mut roots = RootCertStore::empty();
        for cert in certs.iter().cloned() {
            roots
                .add(cert)
                .map_err(|e| self.invalid(format!("not a usable CA certificate: {e}")))?;
        }
        Ok((roots, certs))
    }

    /// The private key of the file.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, FileError> {
        let text = self.read()?;
        PrivateKeyDer::from_pem_slice(&text).map_err(|e| match e {
            pem::Error::NoItemsFound => {
                self.invalid("holds no PEM private key (BEGIN PRIVATE KEY, RSA or EC)")
            }
            e => self.invalid(format!("not PEM: {}", pem_error(&e))),
        })
    }

    /// Refuses a certificate outside its validity period.
    fn valid_now(&self, cert: &CertificateDer<'_>) -> Result<(), FileError> {
        let info = CertInfo::parse(cert)
            .ok_or_else(|| self.invalid("holds a certificate that is not X.509 DER"))?;
        let now = UnixTime::now().as_secs() as i64;
        if now > info.not_after {
            return Err(FileError::Expired {
                key: self.key.to_owned(),
                path: self.path.to_owned(),
                info: Box::new(info),
            });
        }
        if now < info.not_before {
            return Err(FileError::NotYetValid {
                key: self.key.to_owned(),
                path: self.path.to_owned(),
                info: Box::new(info),
            });
        }
        Ok(())
    }
}

/// A certificate chain and its private key, checked to belong together.
pub fn identity(
    cert: Named<'_>,
    key: Named<'_>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, FileError> {
    let chain = cert.certificates()?;
    let private = key.private_key()?;
    let mismatch = |why: String| FileError::KeyMismatch {
        cert_key: cert.key.to_owned(),
        cert_path: cert.path.to_owned(),
        key_key: key.key.to_owned(),
        key_path: key.path.to_owned(),
        why,
    };
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| key.invalid(format!("not a usable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(mismatch("their public keys differ".into()))
        }
        // A key type whose public half ring cannot tell: the handshake will show.
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(e) => return Err(cert.invalid(format!("holds a certificate that cannot be used: {e}"))),
    }
    Ok(Arc::new(certified))
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        pem::Error::Base64Decode(what) => format!("bad base64 ({what})"),
        other => format!("{other:?}"),
    }
}
