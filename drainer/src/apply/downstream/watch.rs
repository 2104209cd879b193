//! A call to the downstream watched while it takes long: a long DDL or a lock wait goes
//! on as long as the server answers probes on a second connection; a hung server or a
//! silently dead connection is given up on (as a transient failure) within about a
//! minute.

use super::*;

/// A call that runs this long gets the server probed on a second connection, every
/// `PROBE_EVERY`; after `PROBE_FAILURES` probes in a row without an answer (each may take
/// `PROBE_TIMEOUT`) the call is abandoned as transient and its connection replaced.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_FAILURES: u32 = 3;

/// Whether the server answers on a new connection within `PROBE_TIMEOUT`, and still has
/// session `id` (the one the call runs in: after a failover behind one address, or a flow
/// dropped by a firewall, another server may answer while the session is gone).
async fn probe(t: &Target, id: u32) -> bool {
    let found = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut conn = t.server.session(t.server.opts()).await.ok()?;
        let found: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                (id,),
            )
            .await
            .ok()?;
        conn.disconnect().await.ok();
        found
    })
    .await
    .ok()
    .flatten();
    found == Some(1)
}

/// Runs `call`, watching the server while it takes long: a long DDL or a lock wait goes
/// on as long as the server answers probes; a hung server or a silently dead connection
/// is given up on within about a minute.
pub(super) async fn watched<T>(
    target: &Target,
    session: u32,
    call: impl Future<Output = Result<T, DownstreamError>>,
) -> Result<T, DownstreamError> {
    tokio::pin!(call);
    let mut failures = 0;
    loop {
        tokio::select! {
            result = &mut call => return result,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
        let answered = tokio::select! {
            result = &mut call => return result,
            answered = probe(target, session) => answered,
        };
        if answered {
            failures = 0;
        } else {
            failures += 1;
            tracing::warn!(server = ?target, failures, "the downstream does not answer a probe while a statement runs");
            if failures >= PROBE_FAILURES {
                return Err(DownstreamError::Transient(format!(
                    "{target:?} answered none of {PROBE_FAILURES} probes: the connection is \
                     given up and replaced"
                )));
            }
        }
    }
}
