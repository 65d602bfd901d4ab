//! The one way this crate takes a std `Mutex`: every mutex here guards a table changed by
//! single inserts, removals or field writes, so a panic while it was held cannot leave it
//! half-updated, and a poisoned lock is taken as it is instead of taking the server down.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning (see the module doc for why that is safe here).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
