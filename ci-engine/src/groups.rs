//! Concurrency groups across the runs of one engine: one holder per group; a newcomer with
//! `cancel-in-progress` cancels the holder, else waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Concurrency groups shared by every run of an engine.
#[derive(Default)]
pub(crate) struct Groups {
    slots: Mutex<HashMap<String, Arc<GroupSlot>>>,
}

#[derive(Default)]
struct GroupSlot {
    lock: Arc<tokio::sync::Mutex<()>>,
    holder: Mutex<Option<CancellationToken>>,
}

/// Held while a run or job is in its concurrency group.
pub(crate) struct GroupGuard {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Groups {
    /// Waits for the group; with `cancel_in_progress`, cancels who holds it first. `None`
    /// when `cancel` fired while waiting.
    pub async fn acquire(
        &self,
        group: &str,
        cancel_in_progress: bool,
        cancel: &CancellationToken,
    ) -> Option<GroupGuard> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .expect("never poisoned")
                .entry(group.to_owned())
                .or_default(),
        );
        if cancel_in_progress {
            if let Some(holder) = slot.holder.lock().expect("never poisoned").as_ref() {
                holder.cancel();
            }
        }
        let guard = tokio::select! {
            g = Arc::clone(&slot.lock).lock_owned() => g,
            _ = cancel.cancelled() => return None,
        };
        *slot.holder.lock().expect("never poisoned") = Some(cancel.clone());
        Some(GroupGuard { _guard: guard })
    }
}
