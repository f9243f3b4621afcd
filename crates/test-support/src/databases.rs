//! The SQLite half of "run this test on both databases": a database file in a directory of its
//! own, removed when the test is done. The PostgreSQL half is [`crate::TestDatabase`].

use std::path::PathBuf;

/// A SQLite database file for one test, in a fresh temporary directory that is removed (with
/// the file and its WAL) when this is dropped.
#[derive(Debug)]
pub struct TestSqlite {
    dir: PathBuf,
    url: String,
}

impl TestSqlite {
    /// A new, empty database location; `name` only makes the directory easy to recognise.
    ///
    /// # Panics
    /// When the temporary directory cannot be created.
    pub fn create(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("iap-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let url = format!("sqlite://{}?mode=rwc", dir.join("iap.db").display());
        Self { dir, url }
    }

    /// URL of the database (created on first connection).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
