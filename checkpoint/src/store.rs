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
    #[error("RocksDB in data-dir {}: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
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

    pub fn path(&self) -> &Path {
        &self.path
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
