//! [`Subscription`]: the handle of a runtime subscription.

use crate::engine::Engine;
use std::fmt;
use std::sync::Weak;

/// A runtime subscription; dropping it unsubscribes.
///
/// ```
/// use eventbus_core::{Event, EventBus};
///
/// #[derive(Event)]
/// struct Ping;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let bus = EventBus::new();
/// let sub = bus.subscribe(|_: &Ping| {});
/// assert_eq!(bus.publish(Ping).await.handled(), 1);
/// drop(sub);
/// assert_eq!(bus.publish(Ping).await.handled(), 0);
/// # }
/// ```
#[must_use = "dropping a Subscription unsubscribes at once; call `.forever()` to keep it"]
pub struct Subscription {
    bus: Weak<Engine>,
    id: u64,
    active: bool,
}

impl Subscription {
    pub(crate) fn new(bus: Weak<Engine>, id: u64) -> Self {
        Subscription {
            bus,
            id,
            active: true,
        }
    }

    /// Unsubscribes now; `false` if the bus is gone.
    pub fn unsubscribe(mut self) -> bool {
        self.remove()
    }

    /// Keeps the handler subscribed for the life of the bus.
    pub fn forever(mut self) {
        self.active = false;
    }

    fn remove(&mut self) -> bool {
        let was_active = std::mem::replace(&mut self.active, false);
        was_active
            && self
                .bus
                .upgrade()
                .is_some_and(|bus| bus.router.remove(self.id))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.remove();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("active", &self.active)
            .finish()
    }
}
