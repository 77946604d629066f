//! The dispatch order rule: priority, then the more derived type, then `#[handler]` fns before
//! subscriptions, then fns by full name and subscriptions by the order they were made.

use eventbus_core::{handler, Event, EventBus, SubscribeOptions};
use std::sync::Mutex;

#[derive(Event)]
pub struct Base;

#[derive(Event)]
#[event(extends = Base)]
pub struct Middle {
    #[event(base)]
    base: Base,
}

#[derive(Event)]
#[event(extends = Middle)]
pub struct Leaf {
    #[event(base)]
    base: Middle,
}

fn leaf() -> Leaf {
    Leaf {
        base: Middle { base: Base },
    }
}

static RAN: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn ran(name: &str) {
    RAN.lock().unwrap().push(name.to_owned());
}

/// Declared in an order unlike the expected one, so passing shows the order is computed.
mod handlers {
    use super::*;

    #[handler]
    fn zeta_on_leaf(_: &Leaf) {
        ran("zeta_on_leaf");
    }

    #[handler(priority = -5)]
    async fn late_on_base(_: &Base) {
        ran("late_on_base");
    }

    #[handler]
    fn alpha_on_leaf(_: &Leaf) {
        ran("alpha_on_leaf");
    }

    #[handler]
    async fn on_base(_: &Base) {
        ran("on_base");
    }

    #[handler(priority = 10)]
    fn urgent_on_base(_: &Base) {
        ran("urgent_on_base");
    }

    #[handler]
    fn on_middle(_: &Middle) {
        ran("on_middle");
    }
}

#[tokio::test]
async fn one_global_order_across_levels_independent_of_declaration_order() {
    let bus = EventBus::builder()
        .with_registered_handlers_from(concat!(module_path!(), "::handlers"))
        .build()
        .unwrap();
    let _second = bus.subscribe_with(SubscribeOptions::new().name("sub_second"), |_: &Leaf| {
        ran("sub_second")
    });
    let _first_made_later = bus
        .subscribe_with(SubscribeOptions::new().name("sub_third"), |_: &Leaf| {
            ran("sub_third")
        });
    let _prio = bus.subscribe_with(
        SubscribeOptions::new()
            .priority(10)
            .name("sub_urgent_on_middle"),
        |_: &Middle| ran("sub_urgent_on_middle"),
    );

    let expected = [
        // priority 10: Middle is more derived than Base
        "sub_urgent_on_middle",
        "urgent_on_base",
        // priority 0, level 0 (Leaf): fns by name, then subscriptions in order made
        "alpha_on_leaf",
        "zeta_on_leaf",
        "sub_second",
        "sub_third",
        // priority 0, level 1 then level 2
        "on_middle",
        "on_base",
        // priority -5
        "late_on_base",
    ];

    let listed: Vec<String> = bus
        .handlers_for::<Leaf>()
        .iter()
        .map(|h| h.name().rsplit("::").next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, expected);

    let report = bus.publish(leaf()).await;
    assert!(report.is_ok());
    assert_eq!(report.handled(), expected.len());
    assert_eq!(*RAN.lock().unwrap(), expected);
}

#[tokio::test]
async fn registered_handlers_are_named_by_full_path() {
    let bus = EventBus::builder()
        .with_registered_handlers_from("ordering::handlers")
        .build()
        .unwrap();
    let names: Vec<String> = bus
        .handlers_for::<Middle>()
        .iter()
        .map(|h| format!("{}@{}:{}", h.name(), h.event_type().name(), h.priority()))
        .collect();
    assert_eq!(
        names,
        [
            "ordering::handlers::urgent_on_base@ordering::Base:10",
            "ordering::handlers::on_middle@ordering::Middle:0",
            "ordering::handlers::on_base@ordering::Base:0",
            "ordering::handlers::late_on_base@ordering::Base:-5",
        ]
    );
}

#[tokio::test]
async fn the_cached_order_follows_subscribe_and_unsubscribe() {
    let bus = EventBus::new();
    let a = bus.subscribe_with(SubscribeOptions::new().name("a"), |_: &Base| {});
    assert_eq!(bus.handlers_for::<Leaf>().len(), 1);
    let b = bus.subscribe_with(
        SubscribeOptions::new().name("b").priority(1),
        |_: &Middle| {},
    );
    let names = |bus: &EventBus| -> Vec<String> {
        bus.handlers_for::<Leaf>()
            .iter()
            .map(|h| h.name().to_owned())
            .collect()
    };
    assert_eq!(names(&bus), ["b", "a"]);
    assert!(a.unsubscribe());
    assert_eq!(names(&bus), ["b"]);
    b.forever();
    assert_eq!(names(&bus), ["b"]);
}
