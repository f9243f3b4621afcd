//! The one way the emulator takes its locks.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from poisoning: every critical section leaves the maps
/// consistent, so a handler that panicked cannot have left half an update behind.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
