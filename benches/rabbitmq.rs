//! Events per second and latency through the RabbitMQ transport, next to a raw `lapin` client
//! doing the same work against the same broker in the same run.
//!
//! `cargo bench -p eventbus-benches --bench rabbitmq` (`EVENTBUS_BENCH_AMQP` picks the broker,
//! default `amqp://guest:guest@127.0.0.1:5672/%2f`). The same work means: the same envelope
//! (the CloudEvent the bridge writes, read back from the queue), persistent messages to a
//! durable topic exchange with the lineage routing key, routed to one quorum queue, publisher
//! confirms awaited per batch of 512; consuming with the same prefetch (256), one ack per
//! message.
//!
//! - publish: from the first `publish` until the broker confirmed all `EVENTS` (the bridge's
//!   `sent` counter), against the raw publisher.
//! - consume: `EVENTS` messages already in the queue, until the handler saw all of them,
//!   against a raw consumer that parses and acknowledges each, batching what has arrived as
//!   the transport does.
//! - latency: publish to handler, at half the bridge's end-to-end rate, p50 and p99.

#[path = "support/transport.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::rabbitmq::RabbitTransport;
use eventbus_core::{Event, EventBus};
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{age, bridged, median, order, percentile, OrderPlaced};

/// Events per throughput run.
const EVENTS: u64 = 50_000;
/// Latency samples per run.
const SAMPLES: u64 = 4_000;
/// Runs of each measurement; the medians are reported.
const TRIALS: usize = 3;
/// Confirms awaited together, as the bridge's writer batches.
const BATCH: usize = 512;
const PREFETCH: u16 = 256;

async fn channel(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers");
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// A raw publisher: `EVENTS` persistent messages with confirms, awaited per batch.
async fn raw_publish(url: &str, topic: &str, payload: &[u8]) -> f64 {
    let (_connection, channel) = channel(url).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let key = eventbus_core::rabbitmq::routing_key(OrderPlaced::TYPE);
    let start = Instant::now();
    let mut sent = 0;
    while sent < EVENTS {
        let mut confirms = Vec::with_capacity(BATCH);
        for _ in 0..BATCH.min((EVENTS - sent) as usize) {
            let properties = BasicProperties::default()
                .with_content_type("application/cloudevents+json".into())
                .with_delivery_mode(2);
            confirms.push(
                channel
                    .basic_publish(
                        topic.into(),
                        key.as_str().into(),
                        BasicPublishOptions::default(),
                        payload,
                        properties,
                    )
                    .await
                    .unwrap(),
            );
            sent += 1;
        }
        for confirm in confirms {
            assert!(confirm.await.unwrap().is_ack());
        }
    }
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

/// A raw consumer: `EVENTS` messages from `queue`, each parsed and acknowledged; as the
/// transport does, it takes what has arrived (up to the prefetch) and acknowledges it together.
async fn raw_consume(url: &str, queue: &str) -> f64 {
    let (_connection, channel) = channel(url).await;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "raw".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let mut consumed = 0;
    while consumed < EVENTS {
        let mut batch = vec![consumer.next().await.unwrap().unwrap()];
        while batch.len() < usize::from(PREFETCH) {
            match consumer.next().now_or_never() {
                Some(Some(Ok(delivery))) => batch.push(delivery),
                _ => break,
            }
        }
        for delivery in &batch {
            let _: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        }
        consumed += batch.len() as u64;
        let acks = batch
            .iter()
            .map(|delivery| channel.basic_ack(delivery.delivery_tag, BasicAckOptions::default()));
        futures_util::future::try_join_all(acks).await.unwrap();
    }
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

/// Counts what the receiving bus got, and the latencies of the events it timed.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

async fn wait_for(what: &AtomicU64, target: u64) {
    while what.load(Ordering::SeqCst) < target {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn sender(url: &str, topic: &str) -> (EventBus, Bridge) {
    // A producer: it sends and does not consume its own topic.
    let bridge = Bridge::builder(RabbitTransport::new(url), "bench-a")
        .send_durable::<OrderPlaced>(topic)
        .build()
        .unwrap();
    let bus = bridged(&bridge);
    bridge.start(&bus).await.unwrap();
    (bus, bridge)
}

async fn receiver(url: &str, topic: &str, received: &Arc<Received>) -> (EventBus, Bridge) {
    let bridge = Bridge::builder(RabbitTransport::new(url), "bench-b")
        .durable::<OrderPlaced>(topic)
        .prefetch(PREFETCH)
        .build()
        .unwrap();
    let bus = bridged(&bridge);
    let r = received.clone();
    bus.subscribe(move |e: &OrderPlaced| {
        r.latencies.lock().unwrap().push(age(e));
        r.count.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    bridge.start(&bus).await.unwrap();
    (bus, bridge)
}

/// The bridge's publish rate: until the broker confirmed every event.
async fn bridge_publish(bus: &EventBus, bridge: &Bridge) -> f64 {
    let before = bridge.diagnostics().sent;
    let start = Instant::now();
    for n in 0..EVENTS {
        let _ = bus.publish(order(n)).await;
    }
    while bridge.diagnostics().sent < before + EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

async fn purge(channel: &Channel, queue: &str) {
    channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .unwrap();
}

async fn run(url: &str) {
    let run = format!("bench.{}", std::process::id());
    let topic = format!("{run}.orders");
    let queue = format!("bench-b.{topic}");
    let (_admin_connection, admin) = channel(url).await;
    // The receiving service's queue, declared by its bridge exactly as in use, then left
    // there for the raw client and the bridge to fill.
    let (_bus, declared) = receiver(url, &topic, &Arc::default()).await;
    let _ = declared.shutdown().await;

    // The envelope, as the bridge writes it.
    let (bus, sender_bridge) = sender(url, &topic).await;
    let _ = bus.publish(order(0)).await;
    while sender_bridge.diagnostics().sent < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let payload = loop {
        if let Some(message) = admin
            .basic_get(queue.as_str().into(), Default::default())
            .await
            .unwrap()
        {
            break message.delivery.data.clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    purge(&admin, &queue).await;
    println!(
        "envelope: {} bytes of CloudEvents JSON; {EVENTS} events per run",
        payload.len()
    );

    let (mut publish, mut raw_pub, mut consume, mut raw_con) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..TRIALS {
        raw_pub.push(raw_publish(url, &topic, &payload).await);
        purge(&admin, &queue).await;
        publish.push(bridge_publish(&bus, &sender_bridge).await);
        // The queue holds the bridge's EVENTS now: consume them with the raw client, then
        // fill it again (events with ids of their own: the consumer drops duplicates) for the
        // bridge's consumer.
        raw_con.push(raw_consume(url, &queue).await);
        let _ = bridge_publish(&bus, &sender_bridge).await;
        let received = Arc::new(Received::default());
        let start = Instant::now();
        let (_rx_bus, rx) = receiver(url, &topic, &received).await;
        wait_for(&received.count, EVENTS).await;
        consume.push(EVENTS as f64 / start.elapsed().as_secs_f64());
        let _ = rx.shutdown().await;
    }

    // End to end, then latency at half that rate.
    let received = Arc::new(Received::default());
    let (_rx_bus, rx) = receiver(url, &topic, &received).await;
    let start = Instant::now();
    for n in 0..EVENTS {
        let _ = bus.publish(order(n)).await;
    }
    wait_for(&received.count, EVENTS).await;
    let end_to_end = EVENTS as f64 / start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    for _ in 0..TRIALS {
        received.latencies.lock().unwrap().clear();
        let target = received.count.load(Ordering::SeqCst) + SAMPLES;
        let interval = Duration::from_secs_f64(2.0 / end_to_end);
        let start = Instant::now();
        for n in 0..SAMPLES {
            tokio::time::sleep_until((start + interval * n as u32).into()).await;
            let _ = bus.publish(order(n)).await;
        }
        wait_for(&received.count, target).await;
        let mut samples = std::mem::take(&mut *received.latencies.lock().unwrap());
        samples.sort();
        latencies.push((percentile(&samples, 0.5), percentile(&samples, 0.99)));
    }
    let _ = rx.shutdown().await;
    let _ = sender_bridge.shutdown().await;

    let publish = median(publish);
    let raw_pub = median(raw_pub);
    let consume = median(consume);
    let raw_con = median(raw_con);
    println!("medians of {TRIALS} trials, each ours right after the raw lapin client");
    println!(
        "{:<10} {:>12} {:>12} {:>7}",
        "", "eventbus/s", "raw lapin/s", "ratio"
    );
    for (label, ours, raw) in [("publish", publish, raw_pub), ("consume", consume, raw_con)] {
        println!(
            "{label:<10} {ours:>12.0} {raw:>12.0} {:>6.0}%",
            ours / raw * 100.0
        );
    }
    let p50 = median(latencies.iter().map(|l| l.0).collect());
    let p99 = median(latencies.iter().map(|l| l.1).collect());
    println!(
        "end to end {end_to_end:.0} events/s; at {:.0} events/s: p50 {p50:.1?}, p99 {p99:.1?}",
        end_to_end / 2.0
    );

    // Leave the broker as we found it.
    for queue in [
        queue.clone(),
        format!("{queue}.dead"),
        format!("bench-a.{topic}"),
        format!("bench-a.{topic}.dead"),
    ] {
        let _ = admin
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = admin
        .exchange_delete(topic.into(), Default::default())
        .await;
}

fn main() {
    let url = std::env::var("EVENTBUS_BENCH_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if Connection::connect(&url, ConnectionProperties::default())
            .await
            .is_err()
        {
            eprintln!("no RabbitMQ at {url}: skipping the RabbitMQ benchmark");
            return;
        }
        run(&url).await;
    });
}
