//! The checkpoint itself: where this direction stands, and which servers it belongs to.

use std::cmp::Ordering;

use pump_reader::{Position, PositionRecord};
use serde::{Deserialize, Serialize};

use crate::store::{Batch, Error, Store};

const POSITION_KEY: &[u8] = b"checkpoint/position";
const IDENTITY_KEY: &[u8] = b"checkpoint/identity";

/// The position after the last transaction durably applied downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub position: Position,
    /// When it was saved, seconds since the epoch.
    pub saved_at: u64,
}

/// One server, as far as a data-dir knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    pub server_id: u32,
    /// MySQL's `server_uuid` (MariaDB has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `host:port` as configured, for messages (not compared: addresses change).
    pub address: String,
}

impl ServerIdentity {
    fn same_server(&self, other: &ServerIdentity) -> bool {
        self.server_id == other.server_id && self.uuid == other.uuid
    }
}

/// The servers and channel a data-dir belongs to: its checkpoint means nothing elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub upstream: ServerIdentity,
    pub downstream: ServerIdentity,
    pub channel_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum PositionValue {
    #[serde(rename = "1")]
    V1 {
        position: PositionRecord,
        saved_at: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "version")]
enum IdentityValue {
    #[serde(rename = "1")]
    V1(Identity),
}

/// How `next` relates to `current`: by GTID state when both have one, else by coordinates.
fn order(current: &Position, next: &Position) -> Option<Ordering> {
    match (&current.gtids, &next.gtids) {
        (Some(a), Some(b)) => b.partial_cmp(a),
        _ => next.coords.partial_cmp(&current.coords),
    }
}

impl Store {
    /// The saved checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, Error> {
        let Some(bytes) = self.get(POSITION_KEY)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: self.path().to_owned(),
            key: "checkpoint/position".into(),
            reason,
        };
        let PositionValue::V1 { position, saved_at } =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let position = Position::try_from(&position).map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(Checkpoint { position, saved_at }))
    }

    /// Saves `position`, with `extra` (other keys that must change with it), in one
    /// durable batch. Refuses a position before the saved one, or one that cannot be
    /// ordered against it: a checkpoint never moves backward.
    pub fn save_checkpoint(
        &self,
        position: &Position,
        saved_at: u64,
        mut extra: Batch,
    ) -> Result<(), Error> {
        if let Some(current) = self.checkpoint()? {
            match order(&current.position, position) {
                Some(Ordering::Greater | Ordering::Equal) => {}
                _ => {
                    return Err(Error::Backward {
                        path: self.path().to_owned(),
                        current: current.position.to_string(),
                        next: position.to_string(),
                    })
                }
            }
        }
        extra.put(POSITION_KEY.to_vec(), position_value(position, saved_at));
        self.write(extra)
    }

    /// Sets the checkpoint to any position (the operator's `drainer checkpoint set`, while
    /// the drainer is stopped).
    pub fn set_checkpoint(&self, position: &Position, saved_at: u64) -> Result<(), Error> {
        let mut batch = Batch::default();
        batch.put(POSITION_KEY.to_vec(), position_value(position, saved_at));
        self.write(batch)
    }

    /// The servers this data-dir belongs to, once claimed.
    pub fn identity(&self) -> Result<Option<Identity>, Error> {
        let Some(bytes) = self.get(IDENTITY_KEY)? else {
            return Ok(None);
        };
        let IdentityValue::V1(identity) =
            serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: self.path().to_owned(),
                key: "checkpoint/identity".into(),
                reason: e.to_string(),
            })?;
        Ok(Some(identity))
    }

    /// Binds this data-dir to `actual` on first use; afterwards refuses other servers or
    /// another channel ([`Error::WrongServers`]).
    pub fn claim(&self, actual: &Identity) -> Result<(), Error> {
        match self.identity()? {
            Some(known)
                if known.upstream.same_server(&actual.upstream)
                    && known.downstream.same_server(&actual.downstream)
                    && known.channel_id == actual.channel_id =>
            {
                Ok(())
            }
            Some(known) => Err(Error::WrongServers {
                path: self.path().to_owned(),
                expected: describe(&known),
                actual: describe(actual),
            }),
            None => {
                let mut batch = Batch::default();
                let value = serde_json::to_vec(&IdentityValue::V1(actual.clone()))
                    .expect("an identity serializes");
                batch.put(IDENTITY_KEY.to_vec(), value);
                self.write(batch)
            }
        }
    }
}

fn position_value(position: &Position, saved_at: u64) -> Vec<u8> {
    let value = PositionValue::V1 {
        position: PositionRecord::from(position),
        saved_at,
    };
    serde_json::to_vec(&value).expect("a position serializes")
}

fn describe(i: &Identity) -> String {
    let server = |s: &ServerIdentity| match &s.uuid {
        Some(uuid) => format!("server_id {} ({uuid}) at {}", s.server_id, s.address),
        None => format!("server_id {} at {}", s.server_id, s.address),
    };
    format!(
        "upstream {}, downstream {}, channel {}",
        server(&i.upstream),
        server(&i.downstream),
        i.channel_id
    )
}

#[cfg(test)]
mod tests {
    use pump_reader::BinlogCoords;

    use super::*;

    fn at(file: &str, pos: u64, gtid: Option<&str>) -> Position {
        Position {
            coords: BinlogCoords::new(file, pos),
            gtids: gtid.map(|g| g.parse().unwrap()),
        }
    }

    fn identity(up: u32, down: u32, channel: i64) -> Identity {
        let server = |id: u32| ServerIdentity {
            server_id: id,
            uuid: None,
            address: format!("10.0.0.{id}:3306"),
        };
        Identity {
            upstream: server(up),
            downstream: server(down),
            channel_id: channel,
        }
    }

    #[test]
    fn saves_forward_only_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.checkpoint().unwrap(), None);
        store
            .save_checkpoint(
                &at("binlog.000001", 400, Some("0-1-5")),
                10,
                Batch::default(),
            )
            .unwrap();
        store
            .save_checkpoint(
                &at("binlog.000001", 400, Some("0-1-5")),
                11,
                Batch::default(),
            )
            .unwrap();
        store
            .save_checkpoint(&at("binlog.000002", 4, Some("0-1-6")), 12, Batch::default())
            .unwrap();
        let e = store
            .save_checkpoint(
                &at("binlog.000001", 900, Some("0-1-5")),
                13,
                Batch::default(),
            )
            .unwrap_err();
        assert!(matches!(e, Error::Backward { .. }), "{e}");
        assert!(
            e.to_string().contains("binlog.000002:4 (gtid 0-1-6)"),
            "{e}"
        );
        // With GTIDs, the coordinates of a failed-over upstream do not matter.
        store
            .save_checkpoint(
                &at("binlog.000001", 100, Some("0-1-7")),
                14,
                Batch::default(),
            )
            .unwrap();
        // Without, coordinates decide; other file names cannot be ordered.
        let e = store
            .save_checkpoint(&at("other.000001", 100, None), 15, Batch::default())
            .unwrap_err();
        assert!(matches!(e, Error::Backward { .. }));
        // The operator may set any position.
        store
            .set_checkpoint(&at("binlog.000001", 4, None), 16)
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let cp = store.checkpoint().unwrap().unwrap();
        assert_eq!(
            (cp.position.to_string(), cp.saved_at),
            ("binlog.000001:4".to_string(), 16)
        );
    }

    #[test]
    fn extra_keys_change_with_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut extra = Batch::default();
        extra.put(b"schema/x".to_vec(), b"y".to_vec());
        store
            .save_checkpoint(&at("binlog.000001", 400, None), 1, extra)
            .unwrap();
        assert_eq!(store.get(b"schema/x").unwrap().as_deref(), Some(&b"y"[..]));
        let mut extra = Batch::default();
        extra.put(b"schema/z".to_vec(), b"w".to_vec());
        assert!(store
            .save_checkpoint(&at("binlog.000001", 300, None), 2, extra)
            .is_err());
        assert_eq!(
            store.get(b"schema/z").unwrap(),
            None,
            "nothing of a refused save is written"
        );
    }

    #[test]
    fn a_data_dir_belongs_to_its_servers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.claim(&identity(1, 2, 7)).unwrap();
        store.claim(&identity(1, 2, 7)).unwrap();
        let mut moved = identity(1, 2, 7);
        moved.upstream.address = "10.9.9.9:3306".into();
        store.claim(&moved).unwrap();
        for wrong in [identity(3, 2, 7), identity(1, 3, 7), identity(1, 2, 8)] {
            let e = store.claim(&wrong).unwrap_err();
            assert!(matches!(e, Error::WrongServers { .. }));
            assert!(
                e.to_string()
                    .contains("upstream server_id 1 at 10.0.0.1:3306"),
                "{e}"
            );
        }
    }
}
