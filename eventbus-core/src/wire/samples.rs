//! Stored samples of old event versions, checked in a test: a change that breaks old events
//! fails there, not in production.

use super::registry::registry;
use crate::event::version::Upcast;
use crate::EventBus;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What [`check_samples`] read: how many samples of each (name, version).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SamplesChecked {
    /// Samples that decoded (and upcast, for an old version), by (name, version).
    pub by_version: BTreeMap<(String, u32), usize>,
}

impl SamplesChecked {
    /// Every sample that passed.
    pub fn total(&self) -> usize {
        self.by_version.values().sum()
    }
}

/// Why [`check_samples`] failed: every problem found, each naming its file or version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleErrors(pub Vec<SampleError>);

/// One problem found by [`check_samples`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SampleError {
    /// The sample's file; `None` for a version that has no sample at all.
    pub path: Option<PathBuf>,
    /// What went wrong.
    pub problem: String,
}

impl fmt::Display for SampleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} event sample problem(s):", self.0.len())?;
        for error in &self.0 {
            match &error.path {
                Some(path) => write!(f, "\n  - {}: {}", path.display(), error.problem)?,
                None => write!(f, "\n  - {}", error.problem)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for SampleErrors {}

/// Checks stored JSON samples of distributed events against the types of this binary and the
/// upcasters of `bus`.
///
/// `dir` holds one folder per event name, one folder per version in it, and samples in those:
/// `dir/orders.placed/v1/paid-by-card.json`. A sample is the event as it travels, the
/// CloudEvents `data` (what `serde_json::to_string(&event)` writes). Each must decode as its
/// version, and an old version must also upcast to the current one. Every old version that
/// `bus` upcasts and that can arrive from the wire must have at least one sample.
///
/// ```no_run
/// # fn main() {
/// let bus = eventbus_core::EventBus::new();
/// let checked = eventbus_core::wire::check_samples(&bus, "tests/event-samples").unwrap();
/// assert!(checked.total() > 0);
/// # }
/// ```
pub fn check_samples(
    bus: &EventBus,
    dir: impl AsRef<Path>,
) -> Result<SamplesChecked, SampleErrors> {
    let dir = dir.as_ref();
    let mut checked = SamplesChecked::default();
    let mut errors = Vec::new();
    let mut fail = |path: Option<PathBuf>, problem: String| {
        errors.push(SampleError { path, problem });
    };
    let upcasts = &bus.engine().router.upcasts;
    let files = sample_files(dir, &mut fail);
    // Versions with a sample, passing or not: a failing one is not reported missing too.
    let sampled: std::collections::BTreeSet<(String, u32)> = files
        .iter()
        .map(|(name, version, _)| (name.clone(), *version))
        .collect();
    for (name, version, path) in files {
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                fail(Some(path), format!("cannot read it: {error}"));
                continue;
            }
        };
        let registration = match registry().by_name(&name, version) {
            Ok(registration) => registration,
            Err(_) => {
                let problem = format!(
                    "no `#[event(distributed)]` type is `{name}` version {version} in this binary"
                );
                fail(Some(path), problem);
                continue;
            }
        };
        let data = match serde_json::from_str::<Box<RawValue>>(&text) {
            Ok(data) => data,
            Err(error) => {
                fail(Some(path), format!("not JSON: {error}"));
                continue;
            }
        };
        let event = match (registration.decode)(&data) {
            Ok(event) => event,
            Err(error) => {
                let problem = format!("does not decode as `{name}` v{version}: {error}");
                fail(Some(path), problem);
                continue;
            }
        };
        if let Some(chain) = upcasts.chain(event.event_type()) {
            let chain = Arc::clone(chain);
            let upcast = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                drop(Upcast::owned(event.0, chain));
            }));
            if let Err(panic) = upcast {
                let message = crate::handler::panic_message(&*panic);
                fail(Some(path), format!("its upcaster panicked: {message}"));
                continue;
            }
        }
        *checked.by_version.entry((name, version)).or_default() += 1;
    }
    for registration in registry().all() {
        let ty = registration.event;
        let key = (ty.name().to_owned(), ty.version());
        if upcasts.chain(ty).is_some() && !sampled.contains(&key) {
            let problem = format!(
                "no sample of `{}` v{} (an old version this bus upcasts): add one under {}",
                key.0,
                key.1,
                dir.join(&key.0).join(format!("v{}", key.1)).display()
            );
            fail(None, problem);
        }
    }
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(SampleErrors(errors))
    }
}

/// `(name, version, path)` of every `dir/<name>/v<version>/*.json`, sorted.
fn sample_files(
    dir: &Path,
    fail: &mut impl FnMut(Option<PathBuf>, String),
) -> Vec<(String, u32, PathBuf)> {
    let mut found = Vec::new();
    let names = match read_dir(dir) {
        Ok(names) => names,
        Err(error) => {
            fail(
                Some(dir.to_owned()),
                format!("cannot read the samples: {error}"),
            );
            return found;
        }
    };
    for name_dir in names {
        let Some(name) = file_name(&name_dir) else {
            continue;
        };
        for version_dir in read_dir(&name_dir).unwrap_or_default() {
            let version = file_name(&version_dir)
                .and_then(|v| v.strip_prefix('v').map(str::to_owned))
                .and_then(|v| v.parse::<u32>().ok());
            let Some(version) = version else {
                let problem = "a version folder is named `v<number>`, e.g. `v1`".to_owned();
                fail(Some(version_dir), problem);
                continue;
            };
            for file in read_dir(&version_dir).unwrap_or_default() {
                if file.extension().is_some_and(|e| e == "json") {
                    found.push((name.clone(), version, file));
                }
            }
        }
    }
    found.sort();
    found
}

fn read_dir(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name()?.to_str().map(str::to_owned)
}
