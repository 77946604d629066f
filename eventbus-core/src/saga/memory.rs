//! The in-memory [`SagaStore`]: embedded, no server; its instances live as long as the process.

use super::store::{Commit, Committed, Instance, SagaStore, StoreError};
use crate::handler::BoxFuture;
use rustc_hash::FxHashMap;
use std::sync::Mutex;

/// Saga instances in this process's memory: the default store. Commits are atomic under one
/// lock per store, held only to compare the version and write.
#[derive(Debug, Default)]
pub struct MemoryStore {
    instances: Mutex<FxHashMap<(String, String), Instance>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn instances(&self) -> std::sync::MutexGuard<'_, FxHashMap<(String, String), Instance>> {
        // A panic cannot leave a half-written instance (each write is one insert), so a
        // poisoned lock still guards consistent data.
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SagaStore for MemoryStore {
    fn load<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Instance>, StoreError>> {
        let found = self
            .instances()
            .get(&(saga.to_owned(), key.to_owned()))
            .cloned();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn commit<'a>(
        &'a self,
        saga: &'a str,
        key: &'a str,
        commit: Commit,
    ) -> BoxFuture<'a, Result<Committed, StoreError>> {
        let mut instances = self.instances();
        let slot = instances.entry((saga.to_owned(), key.to_owned()));
        let outcome = match (slot, commit.expected_version) {
            (std::collections::hash_map::Entry::Vacant(slot), None) => {
                slot.insert(Instance::new(
                    commit.state,
                    1,
                    commit.status,
                    vec![commit.event_id],
                ));
                Committed::Written(1)
            }
            (std::collections::hash_map::Entry::Occupied(mut slot), Some(expected))
                if slot.get().version == expected =>
            {
                let instance = slot.get_mut();
                instance.state = commit.state;
                instance.status = commit.status;
                instance.version += 1;
                instance.processed.push(commit.event_id);
                Committed::Written(instance.version)
            }
            _ => Committed::Conflict,
        };
        Box::pin(std::future::ready(Ok(outcome)))
    }
}
