//! # link: how a process reaches a server, and over what
//!
//! Every connection the binary makes to a MariaDB/MySQL server goes through [`Server`]:
//! client-library sessions ([`Server::session`], mysql_async) and the connections of this
//! project's own protocol code ([`Server::open`], the replication connection), with TLS as
//! the section's `ssl-mode` says ([`ClientTls`]), the MySQL client's names and meanings:
//! `disabled`, `preferred` (TLS where the server offers it, unverified), `required`,
//! `verify-ca` (the chain checked against `ssl-ca`) and `verify-identity` (and the host's
//! name, against the certificate's subjectAltName). Where verification fails, the
//! handshake fails before the login: no name or password has been sent.
//!
//! ## One TLS stack: rustls with ring
//! rustls is the only TLS in the binary (mysql_async's `rustls-tls` feature included), with
//! ring as its crypto provider ([`provider`]):
//! - no system OpenSSL to match: the binary runs the same on every distribution, and a
//!   security review reads one memory-safe TLS implementation;
//! - ring, not aws-lc-rs (rustls' default): aws-lc-sys is a large C/CMake build that
//!   these 2-core machines and every fresh CI clone would pay for; ring builds in seconds
//!   (rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange;
//!   the links still use TLS 1.3 with X25519);
//! - TLS 1.2 stays on for servers (MariaDB 10.x built against older libraries may offer
//!   nothing newer); links between this project's own processes use TLS 1.3 only.
//!
//! Files ([`files`]) are read and checked when loaded, each error naming the configuration
//! key and the path: unreadable, not PEM, no certificate, expired or not yet valid, a key
//! that is not the certificate's. [`x509`] reads a certificate's names and validity for
//! those messages and for `check-config`.

pub mod client;
pub mod files;
pub mod login;
pub mod relay;
pub mod server;
pub mod stream;
pub mod x509;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::ClientTls;
pub use files::FileError;
pub use login::CLIENT_SSL;
pub use server::{refused_by_tls, Greeted, OpenError, Opened, Server};
pub use stream::Stream;

/// The crypto provider of every TLS configuration made here (ring). It is also installed
/// as the process default, so that mysql_async's own configurations use it.
pub fn provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    // rustls 0.23.48 deprecates ring's provider for having no post-quantum key exchange
    // (X25519 and the NIST curves remain); the crate note says why it is ring here.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    // Another thread may have installed it meanwhile: the same provider either way.
    let _ = ring.install_default();
    CryptoProvider::get_default()
        .expect("a provider was just installed")
        .clone()
}
