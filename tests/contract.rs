//! The public contract from the core issue, written the way a user writes it.

use eventbus_core::{handler, Context, Event, EventBus, State};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Event, Clone, Debug)]
pub struct DomainEvent {
    pub at_ms: u64,
}

#[derive(Event, Clone, Debug)]
#[event(extends = DomainEvent)]
pub struct OrderEvent {
    #[event(base)]
    pub base: DomainEvent,
    pub order_id: String,
}

#[derive(Event, Clone, Debug)]
#[event(extends = OrderEvent, name = "orders.placed", version = 1)]
pub struct OrderPlaced {
    #[event(base)]
    pub base: OrderEvent,
    pub user_id: String,
    pub amount_cents: u64,
}

static CALLS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[handler(priority = 100)] // higher runs first
fn validate(e: &OrderPlaced) -> Result<(), String> {
    CALLS.lock().unwrap().push("validate");
    if e.amount_cents == 0 {
        Err("empty order".into())
    } else {
        Ok(())
    }
}

#[handler] // receives the DomainEvent part of every derived event
async fn audit(e: &DomainEvent, ctx: Context) {
    CALLS.lock().unwrap().push("audit");
    println!("{} at {}", ctx.event_name(), e.at_ms);
}

#[derive(Clone, Default)]
pub struct Mailer {
    sent: Arc<AtomicUsize>,
}

#[handler(priority = -10)]
async fn confirm(_e: &OrderPlaced, mailer: State<Mailer>) -> Result<(), std::io::Error> {
    CALLS.lock().unwrap().push("confirm");
    mailer.sent.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fn placed(amount_cents: u64) -> OrderPlaced {
    OrderPlaced {
        base: OrderEvent {
            base: DomainEvent { at_ms: 1_700 },
            order_id: "A-1".into(),
        },
        user_id: "u-7".into(),
        amount_cents,
    }
}

#[tokio::test]
async fn the_contract_snippet_behaves_as_documented() -> Result<(), Box<dyn std::error::Error>> {
    let mailer = Mailer::default();
    let bus = EventBus::builder()
        .with_registered_handlers()
        .state(mailer.clone())
        .max_depth(16)
        .build()?;

    let report = bus.publish(placed(4_200)).await;
    assert!(report.is_ok() && report.handled() == 3, "{report:?}");
    assert_eq!(*CALLS.lock().unwrap(), ["validate", "audit", "confirm"]);
    assert_eq!(mailer.sent.load(Ordering::SeqCst), 1);

    let report = bus.publish(placed(0)).await;
    assert!(!report.is_ok());
    assert_eq!(report.handled(), 3);
    let failures = report.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].handler(), "contract::validate");
    assert_eq!(failures[0].to_string(), "empty order");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let sub = bus.subscribe(move |e: &OrderEvent| sink.lock().unwrap().push(e.order_id.clone()));
    assert_eq!(bus.publish(placed(1)).await.handled(), 4);
    drop(sub);
    assert_eq!(bus.publish(placed(1)).await.handled(), 3);
    assert_eq!(*seen.lock().unwrap(), ["A-1"]);

    bus.emit(placed(5))?;
    bus.shutdown().await;
    assert_eq!(mailer.sent.load(Ordering::SeqCst), 5);
    Ok(())
}

/// `Context::time` is the publish time: within the publish call for sync handlers, and taken
/// on entry (not when read, after an await) for async handlers and emitted events.
#[tokio::test]
async fn event_time_is_the_publish_time_on_every_path() {
    use std::time::{Duration, SystemTime};

    #[derive(Event)]
    struct Tick;

    static SEEN: Mutex<Vec<SystemTime>> = Mutex::new(Vec::new());
    fn seen() -> Vec<SystemTime> {
        std::mem::take(&mut *SEEN.lock().unwrap())
    }
    fn read_sync(_: &Tick, ctx: Context) {
        SEEN.lock().unwrap().push(ctx.time());
    }
    async fn read_after_a_wait(_: &Tick, ctx: Context<'_>) {
        let waited_from = SystemTime::now();
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(ctx.time() <= waited_from, "stamped before the handler ran");
        SEEN.lock().unwrap().push(ctx.time());
    }

    let bus = EventBus::new();
    let _sync = bus.subscribe(read_sync);
    let before = SystemTime::now();
    assert!(bus.publish(Tick).await.is_ok());
    let after = SystemTime::now();
    let times = seen();
    assert!(times.len() == 1 && before <= times[0] && times[0] <= after);

    // The async handler runs first and reads the time late: it still sees the start.
    let bus = EventBus::new();
    let _async = bus.subscribe(read_after_a_wait);
    let _sync = bus.subscribe(read_sync);
    let before = SystemTime::now();
    assert!(bus.publish(Tick).await.is_ok());
    let times = seen();
    assert_eq!(times.len(), 2);
    assert_eq!(times[0], times[1], "one time per event");
    assert!(before <= times[0]);

    // An emitted event is timed when emitted, not when a worker gets to it.
    let before = SystemTime::now();
    bus.emit(Tick).unwrap();
    let emitted = SystemTime::now();
    bus.shutdown().await;
    let times = seen();
    assert_eq!(times.len(), 2);
    assert!(before <= times[0] && times[0] <= emitted);
}

mod ids {
    use eventbus_core::{Context, Event, EventBus, EventId};
    use std::sync::{Arc, Mutex};

    #[derive(Event)]
    struct Asked;

    #[derive(Event)]
    struct Unasked;

    #[derive(Event)]
    struct FollowUp;

    fn version_of(id: EventId) -> char {
        id.to_string().chars().nth(14).unwrap()
    }

    #[tokio::test]
    async fn the_id_a_handler_sees_is_the_reports_and_ids_are_uuid_v7() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let _asked = bus.subscribe(move |_: &Asked, ctx: Context| {
            s.lock().unwrap().push(ctx.event_id());
        });
        let _unasked = bus.subscribe(|_: &Unasked| {});

        let report = bus.publish(Asked).await;
        assert_eq!(seen.lock().unwrap()[..], [report.event_id()]);
        assert_eq!(version_of(report.event_id()), '7');

        // Nobody asked during the publish: the report fixes the id when first asked, once.
        let report = bus.publish(Unasked).await;
        let id = report.event_id();
        assert_eq!(report.event_id(), id);
        assert_eq!(report.clone().event_id(), id);
        assert_eq!(version_of(id), '7');
        assert_ne!(bus.publish(Unasked).await.event_id(), id);
    }

    #[tokio::test]
    async fn follow_ups_carry_the_ids_their_causes_had() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let _cause = bus.subscribe(|_: &Asked, ctx: Context| {
            ctx.emit(FollowUp).expect("accepted");
        });
        let s2 = seen.clone();
        let _follow = bus.subscribe(move |_: &FollowUp, ctx: Context| {
            s2.lock()
                .unwrap()
                .push((ctx.correlation_id(), ctx.causation_id()));
        });
        let report = bus.publish(Asked).await;
        bus.shutdown().await;
        let root = report.event_id();
        assert_eq!(seen.lock().unwrap()[..], [(root, Some(root))]);
    }
}
