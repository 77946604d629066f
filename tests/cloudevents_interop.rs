//! Interop with the official CloudEvents SDK for Python (`pip install cloudevents pika`; the
//! test script installs them): events it writes reach our handlers through the Redis bridge,
//! with extension attributes in their canonical string form and times with UTC offsets; events
//! we write are read by it with every attribute intact. The same both ways over RabbitMQ, with
//! pika as the Python client.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::rabbitmq::RabbitTransport;
use eventbus_core::redis::RedisTransport;
use eventbus_core::{Context, Event, EventBus};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use support::{connect, unique, wait_until, SHARED_URL};

const LIMIT: Duration = Duration::from_secs(20);
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Event, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[event(name = "interop.order", distributed)]
struct Order {
    order: u64,
}

/// The SDK's classic API: `cloudevents.http` up to 1.x, `cloudevents.v1.http` from 2.0.
const IMPORTS: &str = r#"
import json, sys
try:
    from cloudevents.http import CloudEvent, from_json
    from cloudevents.conversion import to_structured
except ImportError:
    from cloudevents.v1.http import CloudEvent, from_json
    from cloudevents.v1.conversion import to_structured
"#;

fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(format!("{IMPORTS}\n{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs what the suite needs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python failed (is the `cloudevents` package installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A bus bridged to the stream `stream` as the service `rust-shop` (not started yet).
fn bridged(stream: &str) -> (EventBus, Bridge) {
    let bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "rust-shop")
        .durable::<Order>(stream)
        .block(Duration::from_millis(100))
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    (bus, bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_by_the_python_sdk_reach_our_handlers() {
    let stream = unique("interop-in");
    let (bus, bridge) = bridged(&stream);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscribe(move |e: &Order, ctx: Context| {
        s.lock().unwrap().push((
            e.order,
            ctx.event_version(),
            ctx.time(),
            ctx.origin().map(str::to_owned),
            ctx.header("tenant").map(str::to_owned),
        ));
    })
    .forever();
    bridge.start(&bus).await.unwrap();

    // A generic producer writes an extension whose type it does not know as a string, and
    // keeps the offset of its local time.
    let as_string = python(
        r#"
event = CloudEvent({"type": "interop.order", "source": "python-shop", "eventversion": "1",
                    "time": "2026-11-30T10:00:00.123+02:00", "tenant": "acme"}, {"order": 1})
sys.stdout.write(to_structured(event)[1].decode())
"#,
        "",
    );
    let as_number = python(
        r#"
event = CloudEvent({"type": "interop.order", "source": "python-shop", "eventversion": 1,
                    "time": "2026-11-30T08:00:01Z"}, {"order": 2})
sys.stdout.write(to_structured(event)[1].decode())
"#,
        "",
    );
    let mut redis = connect(SHARED_URL).await;
    for payload in [&as_string, &as_number] {
        let _: String = redis.xadd(&stream, "*", &[("ce", payload)]).await.unwrap();
    }
    wait_until("both events are handled", LIMIT, || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().len() == 2 }
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(1_796_025_600_000 + millis);
    assert_eq!(
        seen,
        [
            (
                1,
                1,
                at(123),
                Some("python-shop".into()),
                Some("acme".into())
            ),
            (2, 1, at(1_000), Some("python-shop".into()), None),
        ]
    );
    let d = bridge.diagnostics();
    assert_eq!((d.malformed, d.dead_lettered), (0, 0), "{d:?}");
    assert!(bridge.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_we_write_are_read_by_the_python_sdk() {
    let stream = unique("interop-out");
    let (bus, bridge) = bridged(&stream);
    bridge.start(&bus).await.unwrap();
    let headers = eventbus_core::Headers::from_iter([("tenant", "acme")]);
    let report = bus.publish_with(Order { order: 9 }, headers).await;
    assert!(report.is_ok());
    let payload = support::first_cloudevent(&stream, LIMIT).await;

    let read = python(
        r#"
event = from_json(sys.stdin.read())
print(json.dumps({
    "specversion": event["specversion"], "id": event["id"], "type": event["type"],
    "source": event["source"], "time": str(event["time"]), "eventversion": event["eventversion"],
    "tenant": event["tenant"], "correlationid": event["correlationid"], "data": event.data,
}))
"#,
        &payload,
    );
    let read: serde_json::Value = serde_json::from_str(&read).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(read["specversion"], "1.0");
    assert_eq!(read["id"], report.event_id().to_string());
    assert_eq!(read["type"], "interop.order");
    assert_eq!(read["source"], "rust-shop");
    assert_eq!(read["time"], sent["time"]);
    assert_eq!(read["eventversion"], 1);
    assert_eq!(read["tenant"], "acme");
    assert_eq!(read["correlationid"], report.event_id().to_string());
    assert_eq!(read["data"], serde_json::json!({"order": 9}));
    assert!(bridge.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_entries_we_write_are_read_by_the_python_sdk() {
    let stream = unique("interop-packed");
    let bridge = Bridge::builder(RedisTransport::new(SHARED_URL), "rust-shop")
        .send_durable::<Order>(&stream)
        .events_per_entry(64)
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    bridge.start(&bus).await.unwrap();
    // A burst (a publish does not wait for Redis): written together, packed together.
    for order in 0..300 {
        assert!(bus.publish(Order { order }).await.is_ok());
    }
    assert!(bridge.shutdown().await.is_complete());
    let mut redis = connect(SHARED_URL).await;
    let entries: redis::streams::StreamRangeReply = redis.xrange_all(&stream).await.unwrap();
    let mut orders = Vec::new();
    let mut packed = 0;
    for entry in &entries.ids {
        // What docs/transports.md tells a Python consumer to do with either field.
        let (script, field) = match entry.map.contains_key("ces") {
            true => (
                "events = [from_json(json.dumps(e)) for e in json.loads(sys.stdin.read())]",
                "ces",
            ),
            false => ("events = [from_json(sys.stdin.read())]", "ce"),
        };
        packed += usize::from(field == "ces");
        let value: String = redis::from_redis_value(entry.map[field].clone()).unwrap();
        let read = python(
            &format!(
                "{script}\nprint(json.dumps([[e[\"type\"], e[\"source\"], e.data[\"order\"]] for e in events]))"
            ),
            &value,
        );
        let read: Vec<(String, String, u64)> = serde_json::from_str(&read).unwrap();
        for (kind, source, order) in read {
            assert_eq!(
                (kind.as_str(), source.as_str()),
                ("interop.order", "rust-shop")
            );
            orders.push(order);
        }
    }
    assert!(
        packed > 0,
        "{packed} of {} entries packed",
        entries.ids.len()
    );
    assert_eq!(
        orders,
        (0..300).collect::<Vec<_>>(),
        "every event, in order"
    );
}

/// A bus bridged to RabbitMQ as `rust-shop`, routing `Order` durably to `topic` (not started).
fn bridged_rabbit(topic: &str) -> (EventBus, Bridge) {
    let bridge = Bridge::builder(RabbitTransport::new(AMQP), "rust-shop")
        .durable::<Order>(topic)
        .build()
        .unwrap();
    let bus = support::bus_for(&bridge);
    (bus, bridge)
}

/// Removes what a RabbitMQ test declared.
fn remove_rabbit(topic: &str, queues: &[String]) {
    let queues = queues
        .iter()
        .map(|q| format!("ch.queue_delete({q:?})"))
        .collect::<Vec<_>>()
        .join("\n");
    python(
        &format!("{PIKA}\n{queues}\nch.exchange_delete({topic:?})\nconn.close()"),
        "",
    );
}

/// pika, connected to the shared broker as `conn`, with a channel `ch`.
const PIKA: &str = r#"
import pika
conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2f"))
ch = conn.channel()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_events_published_by_pika_reach_our_handlers() {
    let topic = unique("interop-rabbit-in");
    let (bus, bridge) = bridged_rabbit(&topic);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    bus.subscribe(move |e: &Order, ctx: Context| {
        s.lock()
            .unwrap()
            .push((e.order, ctx.origin().map(str::to_owned)));
    })
    .forever();
    bridge.start(&bus).await.unwrap(); // declares the exchange and the service's queue
    python(
        &format!(
            r#"{PIKA}
event = CloudEvent({{"type": "interop.order", "source": "python-shop", "eventversion": "1"}},
                   {{"order": 7}})
headers, body = to_structured(event)
ch.basic_publish(exchange={topic:?}, routing_key="interop_order", body=body,
                 properties=pika.BasicProperties(content_type=headers["content-type"],
                                                 delivery_mode=2))
conn.close()
"#
        ),
        "",
    );
    wait_until("pika's event is handled", LIMIT, || {
        let seen = seen.clone();
        async move { !seen.lock().unwrap().is_empty() }
    })
    .await;
    assert_eq!(
        seen.lock().unwrap().clone(),
        [(7, Some("python-shop".to_owned()))]
    );
    assert!(bridge.shutdown().await.is_complete());
    remove_rabbit(
        &topic,
        &[
            format!("rust-shop.{topic}"),
            format!("rust-shop.{topic}.dead"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_events_we_publish_are_read_by_pika() {
    let topic = unique("interop-rabbit-out");
    let (bus, bridge) = bridged_rabbit(&topic);
    bridge.start(&bus).await.unwrap();
    let queue = format!("python.{topic}");
    // A Python service binds its own queue to the topic, by the lineage routing key.
    python(
        &format!(
            r#"{PIKA}
ch.queue_declare(queue={queue:?}, durable=True)
ch.queue_bind(queue={queue:?}, exchange={topic:?}, routing_key="interop_order.#")
conn.close()
"#
        ),
        "",
    );
    let report = bus.publish(Order { order: 9 }).await;
    assert!(report.is_ok());
    let read = python(
        &format!(
            r#"{PIKA}
import time
for _ in range(200):
    method, properties, body = ch.basic_get(queue={queue:?}, auto_ack=True)
    if method:
        break
    time.sleep(0.05)
event = from_json(body)
print(json.dumps({{"content_type": properties.content_type, "id": event["id"],
                  "type": event["type"], "source": event["source"], "data": event.data}}))
conn.close()
"#
        ),
        "",
    );
    let read: serde_json::Value = serde_json::from_str(&read).unwrap();
    assert_eq!(read["content_type"], "application/cloudevents+json");
    assert_eq!(read["id"], report.event_id().to_string());
    assert_eq!(read["type"], "interop.order");
    assert_eq!(read["source"], "rust-shop");
    assert_eq!(read["data"], serde_json::json!({"order": 9}));
    assert!(bridge.shutdown().await.is_complete());
    remove_rabbit(
        &topic,
        &[
            queue,
            format!("rust-shop.{topic}"),
            format!("rust-shop.{topic}.dead"),
        ],
    );
}
