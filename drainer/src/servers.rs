//! The direction's two servers, each with its TLS loaded once, when the process starts.

use conf::{Config, ServerTls};
use link::{ClientTls, FileError, Server};
use std::sync::Arc;

/// How this direction reaches its upstream (`[pump]`) and downstream (`[syncer.to]`).
#[derive(Debug, Clone)]
pub struct Servers {
    pub upstream: Server,
    pub downstream: Server,
}

impl Servers {
    /// Reads and checks the TLS files both sections name: a file that cannot be used is
    /// an error naming its key and path (bad configuration, exit 2).
    pub fn load(config: &Config) -> Result<Servers, FileError> {
        let (pump, to) = (&config.pump, &config.syncer.to);
        Ok(Servers {
            upstream: server(
                &pump.host,
                pump.port,
                &pump.user,
                pump.password.expose(),
                &pump.tls(),
            )?,
            downstream: server(&to.host, to.port, &to.user, to.password.expose(), &to.tls())?,
        })
    }
}

fn server(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    tls: &ServerTls,
) -> Result<Server, FileError> {
    Ok(Server {
        host: host.to_owned(),
        port,
        user: user.to_owned(),
        password: password.to_owned(),
        tls: Arc::new(ClientTls::load(tls)?),
    })
}
