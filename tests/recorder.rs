//! The test recorder: typed access to everything published, follow-ups and their causal chain
//! included, and clear assertion failures.

use eventbus_core::testing::Recorder;
use eventbus_core::{middleware, Context, Event, EventBus};

#[derive(Event, Clone, Debug, PartialEq)]
#[event(name = "cart")]
struct CartEvent {
    cart: u32,
}

#[derive(Event, Clone, Debug, PartialEq)]
#[event(extends = CartEvent, name = "cart.checked_out")]
struct CheckedOut {
    #[event(base)]
    base: CartEvent,
    total: u64,
}

#[derive(Event, Clone, Debug, PartialEq)]
#[event(name = "receipt.sent")]
struct ReceiptSent {
    cart: u32,
}

#[derive(Event, Debug)]
#[event(name = "not.clonable")]
struct NotClonable;

async fn send_receipt(e: &CheckedOut, ctx: Context<'_>) {
    let _ = ctx.publish(ReceiptSent { cart: e.base.cart }).await;
}

fn bus(recorder: &Recorder) -> EventBus {
    let bus = EventBus::builder()
        .middleware(recorder.clone())
        .middleware(middleware::from_fn(
            "stamp",
            |mut env: middleware::Envelope, next: middleware::Next| async move {
                env.headers_mut().insert("stamped", "yes");
                next.run(env).await
            },
        ))
        .build()
        .unwrap();
    bus.subscribe(send_receipt).forever();
    bus
}

#[tokio::test]
async fn records_events_and_follow_ups_with_their_causal_chain() {
    let recorder = Recorder::new();
    let bus = bus(&recorder);
    let checkout = CheckedOut {
        base: CartEvent { cart: 9 },
        total: 1_250,
    };
    let _ = bus.publish(checkout.clone()).await;

    assert_eq!(recorder.events::<CheckedOut>(), [checkout]);
    assert_eq!(
        recorder.events::<CartEvent>(),
        [CartEvent { cart: 9 }],
        "typed by ancestor too"
    );
    assert_eq!(recorder.events::<ReceiptSent>(), [ReceiptSent { cart: 9 }]);
    assert_eq!(recorder.count::<CartEvent>(), 1);

    let first = recorder.assert_published::<CheckedOut>();
    let receipt = recorder.assert_published::<ReceiptSent>();
    assert_eq!(receipt.causation_id, Some(first.id));
    assert_eq!(receipt.correlation_id, first.id);
    assert_eq!(receipt.depth, 1);
    assert!(
        recorder.records()[0].headers.is_empty(),
        "recorded before later middleware"
    );
    recorder.assert_not_published::<NotClonable>();

    recorder.clear();
    assert_eq!(recorder.records().len(), 0);
}

#[tokio::test]
#[should_panic(
    expected = "expected exactly one `receipt.sent` to be published, found 0; published: [cart]"
)]
async fn a_failed_assertion_lists_what_was_published() {
    let recorder = Recorder::new();
    let bus = bus(&recorder);
    let _ = bus.publish(CartEvent { cart: 1 }).await;
    recorder.assert_published::<ReceiptSent>();
}

#[tokio::test]
async fn events_that_are_not_clone_are_counted_by_metadata() {
    let recorder = Recorder::new();
    let bus = bus(&recorder);
    let _ = bus.publish(NotClonable).await;
    assert_eq!(recorder.count::<NotClonable>(), 1);
    assert!(recorder.records()[0].event.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_a_snapshot_that_may_be_held_across_a_publish() {
    let recorder = Recorder::new();
    let bus = bus(&recorder);
    assert!(bus.publish(ReceiptSent { cart: 1 }).await.is_ok());
    let before = recorder.records();
    // Holding the records while publishing more must not deadlock (it would with a guard).
    let published = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        bus.publish(ReceiptSent { cart: 2 }),
    )
    .await
    .expect("publishing while holding records() does not deadlock");
    assert!(published.is_ok());
    assert_eq!(before.len(), 1);
    assert_eq!(recorder.records().len(), 2);
}
