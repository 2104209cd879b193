//! XA transactions prepared downstream as the upstream prepared them, and ended as it
//! ended them; the server's ambiguous answers checked against `XA RECOVER`.

use super::*;

impl Downstream {
    /// The downstream's id for the upstream XA transaction `xid`: the same global id and
    /// branch qualifier, under a format id of this channel's (so it never meets an XA
    /// transaction of the downstream's own clients).
    pub fn xa_id(&self, xid: &Xid) -> Xid {
        let channel = self.target.record.channel_id as u64;
        // Plain arithmetic, not a library hash: the same id after an upgrade.
        let mixed = (0x4452_u64 << 16 | (channel & 0xFFFF))
            ^ u64::from(xid.format_id).wrapping_mul(0x9E37_79B1);
        Xid {
            format_id: (mixed & 0x7FFF_FFFF) as u32,
            ..xid.clone()
        }
    }

    /// Prepares `stmts` downstream as the XA transaction `xid` (`XA START`, the
    /// statements, `XA END`, `XA PREPARE`), as the upstream prepared it; the session is
    /// closed after (it can do nothing else until the transaction ends; the prepared
    /// transaction outlives it). `Ok(false)`: `xid` is prepared downstream already (by a
    /// run that stopped before its checkpoint passed it). No mark row: the channel's
    /// server id marks it (a mark row would stay locked until the XA COMMIT).
    pub async fn prepare_xa(&mut self, xid: &Xid, stmts: &[Stmt]) -> Result<bool, DownstreamError> {
        if !self.begin_xa(xid).await? {
            return Ok(false);
        }
        self.exec(stmts).await?;
        self.end_prepare_xa(xid).await?;
        Ok(true)
    }

    /// `XA START xid`: the open transaction [`Downstream::exec`] adds to. `Ok(false)`: it
    /// is prepared downstream already (nothing opened).
    pub async fn begin_xa(&mut self, xid: &Xid) -> Result<bool, DownstreamError> {
        self.conn().await?;
        if self.target.mark.is_some() && !self.mariadb {
            return Err(DownstreamError::Definite {
                statement: format!("XA START {xid}"),
                code: 0,
                reason: "loopback control cannot mark an XA transaction on a MySQL \
                         downstream (MySQL has no session server_id, and a mark row would \
                         stay locked until the XA COMMIT): it would come back to the \
                         upstream. Commit it there in one phase, or run this channel \
                         without loopback-control"
                    .into(),
            });
        }
        // XAER_DUPID: a transaction of this id exists. Prepared (by a run before), or
        // still open in a session given up on and not yet rolled back by the server.
        let result = self.xa_statement(&format!("XA START {xid}"), 1440).await;
        self.in_txn = matches!(result, Ok(true));
        match result {
            Ok(false) if !self.xa_prepared(xid).await? => Err(DownstreamError::Transient(format!(
                "XA transaction {xid} is still open in another session (one given up \
                     on, not yet rolled back)"
            ))),
            other => other,
        }
    }

    /// `XA END`, `XA PREPARE` of the open XA transaction; the session is closed after.
    pub async fn end_prepare_xa(&mut self, xid: &Xid) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let result = self.text(&format!("XA END {xid}; XA PREPARE {xid}")).await;
        self.in_txn = false;
        match result {
            Ok(()) => {
                self.close().await;
                Ok(())
            }
            Err(e) => {
                self.reset();
                Err(e)
            }
        }
    }

    /// Commits the open XA transaction in one phase, `stamp`'s apply record inside it.
    pub async fn commit_one_phase(
        &mut self,
        xid: &Xid,
        stamp: &Stamp,
    ) -> Result<(), DownstreamError> {
        self.require_txn()?;
        let record = self.target.record.write(self.worker, stamp);
        let result = self
            .text(&format!(
                "{record}; XA END {xid}; XA COMMIT {xid} ONE PHASE"
            ))
            .await;
        self.in_txn = false;
        if result.is_ok() {
            self.recorded(stamp);
        }
        self.reset_on_error(result)
    }

    /// `XA COMMIT xid` or `XA ROLLBACK xid` of a transaction prepared downstream.
    /// `Ok(false)`: none of that id is prepared there (it ended already, before a
    /// restart; or it was prepared upstream before this channel started reading).
    pub async fn end_xa(&mut self, xid: &Xid, commit: bool) -> Result<bool, DownstreamError> {
        let verb = if commit { "COMMIT" } else { "ROLLBACK" };
        // XAER_NOTA: unknown to this session. The server says so too while the session
        // that prepared it is still being closed: `XA RECOVER` tells the two apart.
        match self.xa_statement(&format!("XA {verb} {xid}"), 1397).await {
            Ok(false) if self.xa_prepared(xid).await? => Err(DownstreamError::Transient(format!(
                "XA transaction {xid} is prepared but still held by the session that \
                     prepared it"
            ))),
            other => other,
        }
    }

    /// Whether `xid` is prepared downstream (`XA RECOVER` lists it), whichever session
    /// holds it.
    pub(super) async fn xa_prepared(&mut self, xid: &Xid) -> Result<bool, DownstreamError> {
        let sql = "XA RECOVER";
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let prepared: Vec<(i64, usize, usize, Vec<u8>)> = watched(&target, session, async {
            conn.query(sql).await.map_err(|e| classify(sql, e))
        })
        .await?;
        let data = [xid.gtrid.as_slice(), xid.bqual.as_slice()].concat();
        Ok(prepared.iter().any(|(format, gtrid, bqual, d)| {
            *format == i64::from(xid.format_id)
                && (*gtrid, *bqual) == (xid.gtrid.len(), xid.bqual.len())
                && *d == data
        }))
    }

    /// Runs the XA statement `sql`; `Ok(false)` when the server answers with error
    /// `absent` (the transaction is not in the state the statement needs).
    pub(super) async fn xa_statement(
        &mut self,
        sql: &str,
        absent: u16,
    ) -> Result<bool, DownstreamError> {
        let target = Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let result = watched(&target, session, async {
            match conn.query_drop(sql).await {
                Ok(()) => Ok(true),
                Err(mysql_async::Error::Server(e)) if e.code == absent => Ok(false),
                Err(e) => Err(classify(sql, e)),
            }
        })
        .await;
        self.reset_on_error(result)
    }
}
