//! Opening the RocksDB store in `data-dir`: one drainer at a time, a known format.

use std::path::{Path, PathBuf};

use rocksdb::{ErrorKind, Options, DB};

/// The layout version this build writes. A store with another one is refused rather than
/// misread; a later release that changes the layout migrates from the versions it knows.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &[u8] = b"meta/format-version";

/// Why the store could not be used. Every variant names the directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process (a second drainer on the same `data-dir`) holds the store's lock.
    #[error("data-dir {} is in use by another drainer process (RocksDB lock held)", path.display())]
    InUse { path: PathBuf },
    #[error("data-dir {} has store format version {found}; this build reads version {FORMAT_VERSION}", path.display())]
    Format { path: PathBuf, found: String },
    /// A save that would move the checkpoint backward (or to a position that cannot be
    /// ordered against it).
    #[error("data-dir {}: the checkpoint would move from {current} back to {next}; use `drainer checkpoint set` to move it deliberately", path.display())]
    Backward {
        path: PathBuf,
        current: String,
        next: String,
    },
    /// The data-dir belongs to other servers (or another channel).
    #[error("data-dir {} belongs to {expected}, not to {actual}: use another data-dir for these servers", path.display())]
    WrongServers {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("data-dir {}: the value of {key} is unreadable: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        key: String,
        reason: String,
    },
    #[error("RocksDB in data-dir {}: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
}

/// A key and its value, as [`Store::scan`] returns them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Puts and deletes that [`Store::write`] applies all together or not at all.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
}

impl Batch {
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.puts.push((key.into(), value.into()));
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.deletes.push(key.into());
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// The open store. Dropping it releases the lock.
pub struct Store {
    db: DB,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `dir`, creating the directory and the store when missing.
    /// Fails with [`Error::InUse`] while another process has it open.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, dir).map_err(|source| {
            let message = source.to_string();
            if source.kind() == ErrorKind::IOError && message.to_ascii_lowercase().contains("lock")
            {
                Error::InUse {
                    path: dir.to_owned(),
                }
            } else {
                Error::Db {
                    path: dir.to_owned(),
                    source,
                }
            }
        })?;
        let store = Store {
            db,
            path: dir.to_owned(),
        };
        match store.db.get(FORMAT_KEY).map_err(|e| store.db_error(e))? {
            None => store
                .db
                .put(FORMAT_KEY, FORMAT_VERSION.to_le_bytes())
                .map_err(|e| store.db_error(e))?,
            Some(v) if v == FORMAT_VERSION.to_le_bytes() => {}
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_slice())
                    .map(|b| u32::from_le_bytes(b).to_string())
                    .unwrap_or_else(|_| format!("{v:02x?}"));
                return Err(Error::Format {
                    path: store.path.clone(),
                    found,
                });
            }
        }
        Ok(store)
    }

    /// Opens an existing store for reading only, also while a drainer has it open (for
    /// inspection commands). Fails if `dir` holds no store.
    pub fn open_read_only(dir: &Path) -> Result<Store, Error> {
        let opts = Options::default();
        let db = DB::open_for_read_only(&opts, dir, false).map_err(|source| Error::Db {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Store {
            db,
            path: dir.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every put and delete of `batch` atomically (one RocksDB WriteBatch, synced
    /// to disk before this returns).
    pub fn write(&self, batch: Batch) -> Result<(), Error> {
        let mut wb = rocksdb::WriteBatch::default();
        for (key, value) in &batch.puts {
            wb.put(key, value);
        }
        for key in &batch.deletes {
            wb.delete(key);
        }
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(wb, &opts).map_err(|e| self.db_error(e))
    }

    /// Every key starting with `prefix`, with its value, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, Error> {
        let mut out = Vec::new();
        let iter = self.db.iterator(rocksdb::IteratorMode::From(
            prefix,
            rocksdb::Direction::Forward,
        ));
        for item in iter {
            let (key, value) = item.map_err(|e| self.db_error(e))?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.to_vec(), value.to_vec()));
        }
        Ok(out)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.db.get(key).map_err(|e| self.db_error(e))
    }

    fn db_error(&self, source: rocksdb::Error) -> Error {
        Error::Db {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reopens_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.drainer");
        drop(Store::open(&path).unwrap());
        assert!(
            path.join("CURRENT").is_file(),
            "a RocksDB store was written"
        );
        let store = Store::open(&path).unwrap();
        assert_eq!(store.path(), path);
    }

    #[test]
    fn a_store_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).err().expect("the lock is held");
        assert!(matches!(e, Error::InUse { .. }), "{e}");
        assert!(
            e.to_string().contains(&dir.path().display().to_string()),
            "{e}"
        );
        drop(first);
        Store::open(dir.path()).expect("free again once the first is closed");
    }

    #[test]
    fn batches_apply_whole_and_scans_stay_in_their_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        batch.put(b"schema/\x00\x02".to_vec(), b"two".to_vec());
        batch.put(b"schema/\x00\x01".to_vec(), b"one".to_vec());
        batch.put(b"schemb".to_vec(), b"other".to_vec());
        store.write(batch).unwrap();
        let found: Vec<Vec<u8>> = store
            .scan(b"schema/")
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            found,
            [b"one".to_vec(), b"two".to_vec()],
            "in key order, prefix only"
        );
        let mut batch = Batch::default();
        batch.delete(b"schema/\x00\x01".to_vec());
        store.write(batch).unwrap();
        assert_eq!(store.scan(b"schema/").unwrap().len(), 1);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get(b"schemb").unwrap().as_deref(),
            Some(&b"other"[..]),
            "durable across a reopen"
        );
    }

    #[test]
    fn read_only_opens_beside_a_writer_and_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open_read_only(&dir.path().join("absent")).is_err());
        let writer = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        batch.put(b"k".to_vec(), b"v".to_vec());
        writer.write(batch).unwrap();
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn an_unknown_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = DB::open_default(dir.path()).unwrap();
            db.put(FORMAT_KEY, 7u32.to_le_bytes()).unwrap();
        }
        let e = Store::open(dir.path()).err().expect("format 7 is refused");
        assert!(
            e.to_string()
                .contains("format version 7; this build reads version 1"),
            "{e}"
        );
    }
}
