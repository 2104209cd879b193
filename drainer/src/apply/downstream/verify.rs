//! Answering `drainer verify` (see `crate::verify`): the chunks of a request transaction
//! checksummed here, at its place in the apply order, and the answers committed in one
//! marked transaction with its apply record (so each is written once, and never
//! replicated back).

use mysql_async::prelude::Queryable;

use super::{classify, watched, Downstream, DownstreamError, Stamp};
use crate::verify::chunk::{create, Verdict};

impl Downstream {
    /// Checksums each requested chunk and writes the answers, with `stamp`'s record.
    /// A chunk the server cannot read (a table or column missing here) is answered with
    /// checksum `error` and the server's message.
    pub async fn answer(
        &mut self,
        requests: &[Verdict],
        stamp: &Stamp,
        at: &str,
    ) -> Result<(), DownstreamError> {
        if !self.verify_ready {
            let sql = create(&self.target.record.schema);
            self.text(&sql).await?;
            self.verify_ready = true;
        }
        self.begin(1).await?;
        let target = std::sync::Arc::clone(&self.target);
        let conn = self.conn().await?;
        let session = conn.id();
        let schema = target.record.schema.clone();
        let result = watched(&target, session, async {
            let here: Option<String> = conn
                .query_first("SELECT @@gtid_binlog_pos")
                .await
                .map_err(|e| classify("SELECT @@gtid_binlog_pos", e))?;
            let at = format!("{at}; downstream gtid {}", here.unwrap_or_default());
            for request in requests {
                let (sql, params) = request.chunk.checksum_sql(false);
                let found: Result<Option<(u64, String)>, _> = conn.exec_first(&sql, params).await;
                let (rows, checksum, at) = match found {
                    Ok(Some((rows, checksum))) => (rows, checksum, at.clone()),
                    Ok(None) => (0, "0".to_owned(), at.clone()),
                    Err(mysql_async::Error::Server(e)) => {
                        (0, "error".to_owned(), format!("{at}; {}", e.message))
                    }
                    Err(e) => return Err(classify(&sql, e)),
                };
                let answer = Verdict {
                    rows,
                    checksum,
                    ..request.clone()
                };
                let (sql, params) = answer.insert(&schema, "answer", Some(&at));
                conn.exec_drop(&sql, params)
                    .await
                    .map_err(|e| classify(&sql, e))?;
            }
            Ok(())
        })
        .await;
        if result.is_err() {
            self.reset();
            return result;
        }
        self.commit(Some(stamp)).await
    }
}
