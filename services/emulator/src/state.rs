//! The emulator's in-memory world: keys, purchases per store, faults, request counts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::apple::model::AppleStore;
use crate::faults::Fault;
use crate::google::model::GoogleStore;
use crate::huawei::model::HuaweiStore;
use crate::lock::lock;
use crate::notify::Notifier;

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) base_url: String,
    state_file: Option<PathBuf>,
    /// Held for a whole save (snapshot, write, rename): one writer at a time, so two saves never
    /// share the temporary file and a later snapshot is always the one left on disk.
    saving: Mutex<()>,
    pub(crate) apple: Mutex<AppleStore>,
    pub(crate) google: Mutex<GoogleStore>,
    pub(crate) huawei: Mutex<HuaweiStore>,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) notifier: Notifier,
    pub(crate) stats: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    /// A fresh world, or the one saved in `state_file` when it exists.
    pub(crate) fn open(base_url: String, state_file: Option<PathBuf>) -> std::io::Result<Self> {
        let saved: Option<Saved> = match &state_file {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(path)?;
                Some(serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", path.display()),
                    )
                })?)
            }
            _ => None,
        };
        let (apple, mut google, huawei) = match saved {
            Some(saved) => (saved.apple, saved.google, saved.huawei),
            None => (
                AppleStore::new(),
                GoogleStore::new(&base_url),
                HuaweiStore::default(),
            ),
        };
        google.rebase(&base_url);
        Ok(Self {
            apple: Mutex::new(apple),
            google: Mutex::new(google),
            huawei: Mutex::new(huawei),
            base_url,
            state_file,
            saving: Mutex::new(()),
            faults: Mutex::new(Vec::new()),
            notifier: Notifier::default(),
            stats: Mutex::new(BTreeMap::new()),
        })
    }

    /// Writes the world to the state file, if there is one (atomically: a crash leaves the
    /// previous state, never half a file). Saves run one at a time, each snapshot taken after
    /// the previous save finished, so the file never goes back to an older world.
    pub(crate) fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_file else {
            return Ok(());
        };
        let _one_writer = lock(&self.saving);
        let snapshot = {
            let (apple, google, huawei) =
                (lock(&self.apple), lock(&self.google), lock(&self.huawei));
            serde_json::to_vec(&SavedRef {
                apple: &apple,
                google: &google,
                huawei: &huawei,
            })?
        };
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, snapshot)?;
        std::fs::rename(&temporary, path)
    }

    /// Counts one call of `what` (e.g. `google.products.consume`), for tests to assert on.
    pub(crate) fn count(&self, what: &str) {
        *lock(&self.stats).entry(what.to_owned()).or_default() += 1;
        metrics::counter!("iap_emulator_requests_total", "route" => what.to_owned()).increment(1);
    }
}

/// The persisted world.
#[derive(serde::Deserialize)]
struct Saved {
    apple: AppleStore,
    google: GoogleStore,
    huawei: HuaweiStore,
}

#[derive(serde::Serialize)]
struct SavedRef<'a> {
    apple: &'a AppleStore,
    google: &'a GoogleStore,
    huawei: &'a HuaweiStore,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(shared: &Shared) -> serde_json::Value {
        let (apple, google, huawei) = (
            lock(&shared.apple),
            lock(&shared.google),
            lock(&shared.huawei),
        );
        serde_json::to_value(SavedRef {
            apple: &apple,
            google: &google,
            huawei: &huawei,
        })
        .unwrap()
    }

    #[test]
    fn concurrent_saves_all_succeed_and_leave_the_latest_world() {
        let dir = std::env::temp_dir().join(format!(
            "iap-emulator-state-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("state.json");
        let shared = Shared::open("http://127.0.0.1:1".into(), Some(file.clone())).unwrap();
        let failures = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for writer in 0..8 {
                let (shared, failures) = (&shared, &failures);
                scope.spawn(move || {
                    for n in 0..40 {
                        lock(&shared.apple).shared_secret(&format!("app.{writer}.{n}"));
                        if let Err(e) = shared.save() {
                            eprintln!("save failed: {e}");
                            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(failures.into_inner(), 0, "every save succeeds");
        let reopened = Shared::open("http://127.0.0.1:1".into(), Some(file)).unwrap();
        assert_eq!(
            world(&reopened),
            world(&shared),
            "the file holds the world as of the last save, not an older snapshot"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
