//! [`Metrics`]: counts events and handler outcomes, records publish latency.

use super::BoxFuture;
use super::{Envelope, Middleware, Next};
use crate::PublishReport;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Counts events and handler outcomes per event name and records publish latency, readable at
/// any time with [`snapshot`](Self::snapshot). No exporter: read the numbers and send them
/// wherever you like.
///
/// Keep a clone: clones share the numbers.
///
/// ```
/// use eventbus_core::{middleware::Metrics, Event, EventBus};
///
/// #[derive(Event)]
/// #[event(name = "ping")]
/// struct Ping;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let metrics = Metrics::new();
/// let bus = EventBus::builder().middleware(metrics.clone()).build().unwrap();
/// let _sub = bus.subscribe(|_: &Ping| {});
/// bus.publish(Ping).await;
/// let ping = metrics.snapshot().event("ping").cloned().unwrap();
/// assert_eq!((ping.published, ping.handler_calls, ping.handler_failures), (1, 1, 0));
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    events: Arc<Mutex<BTreeMap<&'static str, EventMetrics>>>,
}

/// The numbers for one event name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventMetrics {
    /// Publishes that reached this middleware.
    pub published: u64,
    /// Handler calls (successful or not).
    pub handler_calls: u64,
    /// Handler calls that failed.
    pub handler_failures: u64,
    /// Failures per handler name.
    pub failures_by_handler: BTreeMap<String, u64>,
    /// Publishes that reached no handler (dead events).
    pub unhandled: u64,
    /// Publishes refused or filtered after this middleware.
    pub refused: u64,
    /// Publish latency, measured around the rest of the chain.
    pub latency: Latency,
}

/// A latency histogram with power-of-two microsecond buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// How many samples.
    pub count: u64,
    /// Their sum.
    pub total: Duration,
    /// The largest.
    pub max: Duration,
    /// `buckets[i]` counts samples below `2^i` µs (the last bucket holds the rest).
    pub buckets: [u64; 24],
}

impl Latency {
    fn record(&mut self, sample: Duration) {
        self.count += 1;
        self.total += sample;
        self.max = self.max.max(sample);
        let micros = sample.as_micros().max(1) as u64;
        let index = (64 - micros.leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[index] += 1;
    }

    /// The mean.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / self.count as u32
        }
    }

    /// An upper bound of the `q` quantile (`0.5` for the median, `0.99` for p99), to within a
    /// factor of two.
    pub fn quantile(&self, q: f64) -> Duration {
        let target = (q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= target.max(1) {
                return Duration::from_micros(1 << i).min(self.max);
            }
        }
        self.max
    }
}

/// What [`Metrics::snapshot`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    events: BTreeMap<&'static str, EventMetrics>,
}

impl MetricsSnapshot {
    /// The numbers of one event name.
    pub fn event(&self, name: &str) -> Option<&EventMetrics> {
        self.events.get(name)
    }

    /// Every event name seen, with its numbers.
    pub fn events(&self) -> impl Iterator<Item = (&'static str, &EventMetrics)> {
        self.events.iter().map(|(name, m)| (*name, m))
    }
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// The numbers so far.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            events: self.lock().clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, EventMetrics>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, name: &'static str, report: &PublishReport, elapsed: Duration) {
        let mut events = self.lock();
        let m = events.entry(name).or_default();
        m.published += 1;
        m.handler_calls += report.handled() as u64;
        for failure in report.failures().iter().filter(|f| !f.is_middleware()) {
            m.handler_failures += 1;
            *m.failures_by_handler
                .entry(failure.handler().to_owned())
                .or_default() += 1;
        }
        if report.refusal().is_some() {
            m.refused += 1;
        } else if report.handled() == 0 {
            m.unhandled += 1;
        }
        m.latency.record(elapsed);
    }
}

impl Middleware for Metrics {
    fn name(&self) -> &str {
        "metrics"
    }

    fn handle(&self, envelope: Envelope, next: Next) -> BoxFuture<'static, PublishReport> {
        let metrics = self.clone();
        let name = envelope.event_name();
        Box::pin(async move {
            let started = Instant::now();
            let report = next.run(envelope).await;
            metrics.record(name, &report, started.elapsed());
            report
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Latency;
    use std::time::Duration;

    #[test]
    fn quantiles_bound_the_samples() {
        let mut latency = Latency::default();
        for micros in 1..=100 {
            latency.record(Duration::from_micros(micros));
        }
        assert_eq!(latency.count, 100);
        assert_eq!(latency.max, Duration::from_micros(100));
        assert!(latency.quantile(0.5) >= Duration::from_micros(50));
        assert!(latency.quantile(0.5) <= Duration::from_micros(128));
        assert_eq!(latency.quantile(1.0), Duration::from_micros(100));
        assert_eq!(latency.mean(), Duration::from_nanos(50_500));
    }
}
