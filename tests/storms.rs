//! Handlers that publish: follow-ups inherit the correlation id, record their cause, and a
//! chain deeper than `max_depth` is refused with the chain named, never overflowing or hanging.

use eventbus_core::{Context, EmitErrorKind, Event, EventBus, EventId, Refusal};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Event, Debug, Clone)]
#[event(name = "storm.ping")]
struct Ping(u32);

#[derive(Event, Debug, Clone)]
#[event(name = "storm.pong")]
struct Pong(u32);

async fn ping_pongs(e: &Ping, ctx: Context<'_>) -> Result<(), String> {
    let report = ctx.publish(Pong(e.0 + 1)).await;
    report.into_result().map(drop).map_err(|e| e.to_string())
}

async fn pong_pings(e: &Pong, ctx: Context<'_>) -> Result<(), String> {
    let report = ctx.publish(Ping(e.0 + 1)).await;
    report.into_result().map(drop).map_err(|e| e.to_string())
}

#[tokio::test]
async fn an_endless_publish_chain_is_refused_at_max_depth() {
    let bus = EventBus::builder().max_depth(5).build().unwrap();
    let pong_depths = Arc::new(Mutex::new(Vec::new()));
    let _a = bus.subscribe(ping_pongs);
    let _b = bus.subscribe(pong_pings);
    let sink = pong_depths.clone();
    // Subscribed after `pong_pings`, so at each level it runs once the chain below has returned.
    let _watch =
        bus.subscribe(move |_: &Pong, ctx: Context| sink.lock().unwrap().push(ctx.depth()));

    let report = tokio::time::timeout(Duration::from_secs(10), bus.publish(Ping(0)))
        .await
        .expect("the storm ends instead of hanging");
    assert!(!report.is_ok());
    // The refusal surfaces at the deepest level and travels up as each handler's error.
    let message = report.failures()[0].to_string();
    assert!(
        message.contains("storm.ping -> storm.pong -> storm.ping -> storm.pong -> storm.ping -> storm.pong -> storm.ping"),
        "{message}"
    );
    assert!(message.contains("max_depth 5"), "{message}");
    assert_eq!(*pong_depths.lock().unwrap(), [5, 3, 1]);
}

#[tokio::test]
async fn the_refusal_names_the_chain() {
    let bus = EventBus::builder().max_depth(2).build().unwrap();
    let refusal = Arc::new(Mutex::new(None));
    let slot = refusal.clone();
    let _a = bus.subscribe(ping_pongs);
    let _b = bus.subscribe(move |e: &Pong, ctx: Context<'_>| {
        // A closure's future cannot borrow ctx, so it publishes synchronously via emit instead.
        let result = ctx.emit(Ping(e.0 + 1)).map_err(|e| e.kind().clone());
        let slot = slot.clone();
        async move {
            *slot.lock().unwrap() = Some(result);
        }
    });
    let _c = bus.subscribe(|_: &Ping, ctx: Context| {
        if ctx.depth() == 2 {
            let refused = ctx.emit(Pong(99)).unwrap_err();
            assert_eq!(
                refused.kind(),
                &EmitErrorKind::Refused(Refusal::TooDeep {
                    max_depth: 2,
                    chain: vec!["storm.ping", "storm.pong", "storm.ping", "storm.pong"],
                })
            );
            assert_eq!(
                refused.into_event().0,
                99,
                "the refused event is handed back"
            );
        }
    });
    let report = bus.publish(Ping(0)).await;
    bus.shutdown().await;
    assert_eq!(report.handled(), 2);
    assert_eq!(*refusal.lock().unwrap(), Some(Ok(())));
}

#[tokio::test]
async fn follow_ups_share_the_correlation_id_and_name_their_cause() {
    #[derive(Debug, Clone, PartialEq)]
    struct Seen {
        name: &'static str,
        id: EventId,
        correlation: EventId,
        causation: Option<EventId>,
        depth: u32,
        chain: Vec<&'static str>,
    }
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let record = |seen: Arc<Mutex<Vec<Seen>>>| {
        move |ctx: &Context<'_>| {
            seen.lock().unwrap().push(Seen {
                name: ctx.event_name(),
                id: ctx.event_id(),
                correlation: ctx.correlation_id(),
                causation: ctx.causation_id(),
                depth: ctx.depth(),
                chain: ctx.chain(),
            })
        }
    };
    let on_ping = record(seen.clone());
    let _ping = bus.subscribe(move |e: &Ping, ctx: Context| {
        on_ping(&ctx);
        if e.0 == 0 {
            ctx.emit(Pong(1)).unwrap();
        }
    });
    let on_pong = record(seen.clone());
    let _pong = bus.subscribe(move |_: &Pong, ctx: Context| on_pong(&ctx));

    assert!(bus.publish(Ping(0)).await.is_ok());
    bus.shutdown().await;
    let seen = seen.lock().unwrap();
    let [ping, pong] = &seen[..] else {
        panic!("{seen:?}")
    };
    assert_eq!(
        (ping.name, ping.depth, ping.causation),
        ("storm.ping", 0, None)
    );
    assert_eq!(ping.correlation, ping.id);
    assert_eq!(ping.chain, ["storm.ping"]);
    assert_eq!((pong.name, pong.depth), ("storm.pong", 1));
    assert_eq!(pong.correlation, ping.id);
    assert_eq!(pong.causation, Some(ping.id));
    assert_ne!(pong.id, ping.id);
    assert_eq!(pong.chain, ["storm.ping", "storm.pong"]);
}
