//! [`SagaTest`]: given events, expect a saga's state and what it published.

use super::{Saga, Sagas, Status};
use crate::testing::Recorder;
use crate::{Event, EventBus};
use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::time::Duration;

/// A bus that runs one saga on the in-memory store and records everything published, for
/// tests: publish the events a scenario is made of, then look at the instance and at what the
/// saga published.
///
/// Scheduled events run on tokio's clock, so a test on a paused clock
/// (`#[tokio::test(start_paused = true)]`, tokio's `test-util` feature) moves through a
/// 30-minute deadline with [`advance`](Self::advance) at once.
///
/// ```
/// use eventbus_core::saga::{testing::SagaTest, SagaContext, Status};
/// use eventbus_core::{saga, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Clone)]
/// struct Paid { order: u32 }
/// #[derive(Event, Clone)]
/// struct Shipped { order: u32 }
/// #[derive(Event, Clone, Debug, PartialEq)]
/// struct Delivered { order: u32 }
///
/// #[derive(Default, Debug, PartialEq, Serialize, Deserialize)]
/// struct Delivery { paid: bool }
///
/// #[saga(key = u32)]
/// impl Delivery {
///     #[start(by = order)]
///     fn paid(&mut self, _: &Paid, _: &mut SagaContext) { self.paid = true; }
///
///     #[step(by = order)]
///     fn shipped(&mut self, e: &Shipped, ctx: &mut SagaContext) {
///         ctx.publish(Delivered { order: e.order });
///         ctx.complete();
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let test = SagaTest::<Delivery>::new();
/// test.given(Paid { order: 7 }).await;
/// assert_eq!(test.state(7).await, Some(Delivery { paid: true }));
/// test.given(Shipped { order: 7 }).await;
/// assert_eq!(test.status(7).await, Some(Status::Completed));
/// assert_eq!(test.published::<Delivered>(), [Delivered { order: 7 }]);
/// # }
/// ```
pub struct SagaTest<S: Saga> {
    bus: EventBus,
    sagas: Sagas,
    recorder: Recorder,
    _saga: PhantomData<fn() -> S>,
}

impl<S: Saga> SagaTest<S> {
    /// A bus running `S` on the in-memory store, with a [`Recorder`].
    pub fn new() -> Self {
        let recorder = Recorder::new();
        let bus = EventBus::builder()
            .middleware(recorder.clone())
            .build()
            .expect("a bus with a recorder builds");
        let sagas = Sagas::builder()
            .saga::<S>()
            .start(&bus)
            .expect("one saga on the in-memory store starts");
        SagaTest {
            bus,
            sagas,
            recorder,
            _saga: PhantomData,
        }
    }

    /// Publishes `event` and waits for the saga (and any other handler) to take it. Panics,
    /// with the report, if a step failed: a test that expects a failure publishes on
    /// [`bus`](Self::bus) and reads the report instead.
    #[track_caller]
    pub fn given<E: Event>(&self, event: E) -> impl std::future::Future<Output = ()> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let report = self.bus.publish(event).await;
            assert!(report.is_ok(), "publish at {caller} failed: {report:?}");
        }
    }

    /// Lets `by` pass on tokio's clock (paused, see above), and the scheduled events that fall
    /// due in it run.
    pub async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
        // The timers' tasks publish when they are next polled: let them.
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
    }

    /// The state of the instance with `key`, if it exists.
    pub async fn state(&self, key: impl Display) -> Option<S> {
        let instance = self.instance(key).await?;
        Some(serde_json::from_value(instance.state).expect("the saga's own state decodes"))
    }

    /// Whether the instance with `key` runs, or how it ended.
    pub async fn status(&self, key: impl Display) -> Option<Status> {
        Some(self.instance(key).await?.status)
    }

    async fn instance(&self, key: impl Display) -> Option<super::Instance> {
        self.sagas
            .store()
            .load(S::NAME, &key.to_string())
            .await
            .expect("the in-memory store does not fail")
    }

    /// Every `E` published so far (by the test or the saga), in order.
    pub fn published<E: Event + Clone>(&self) -> Vec<E> {
        self.recorder.events::<E>()
    }

    /// The bus, to subscribe other handlers or publish without the check of `given`.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The running saga, for its [`stats`](Sagas::stats).
    pub fn sagas(&self) -> &Sagas {
        &self.sagas
    }

    /// The recorder of everything published.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

impl<S: Saga> Default for SagaTest<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Saga> fmt::Debug for SagaTest<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaTest").field("saga", &S::NAME).finish()
    }
}
