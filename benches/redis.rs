//! Events per second and latency through the Redis transport, next to what `redis-benchmark`
//! gets from the same server with the same payload size, run right before.
//!
//! `cargo bench -p eventbus-benches --bench redis` (needs `redis-server` and `redis-benchmark`;
//! `EVENTBUS_BENCH_REDIS` picks the server, default 127.0.0.1:6379). Two bridges in one process,
//! services `bench-a` and `bench-b`: A publishes, B's handler counts.
//!
//! - publish: A alone, from the first `publish` until Redis answered every write (the
//!   bridge's `sent` counter);
//! - end to end: from A's first `publish` until B's handler saw every event, keeping at most
//!   `WINDOW` events unreceived, so the broadcast path (which drops when its queue is full, as
//!   Pub/Sub may) is measured without losses;
//! - latency: publish to handler, at half the end-to-end rate, p50 and p99;
//! - consume: B alone draining what A alone wrote (durable).
//!
//! The durable path runs twice: one event per stream entry (the default), and packed
//! (`events_per_entry(PACKED)`: A writes the events it sends together as one entry).

#[path = "support/transport.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::EventBus;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{age, bridged, median, order, percentile, OrderPlaced};
use tokio::sync::Notify;

/// Events per throughput run.
const EVENTS: u64 = 100_000;
/// Most events published and not yet received during a throughput run.
const WINDOW: u64 = 16_384;
/// Events per latency run.
const ROUND_TRIPS: usize = 4_000;
/// Most events per stream entry on the packed path.
const PACKED: usize = 64;
/// Runs of each measurement; the medians are reported.
const TRIALS: usize = 3;

/// Counts what B's handler received and wakes the bench when a target is reached.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

impl Received {
    async fn wait_for(&self, target: u64) {
        loop {
            let notified = self.reached.notified();
            self.target.store(target, Ordering::SeqCst);
            if self.count.load(Ordering::SeqCst) >= target {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Broadcast,
    Durable,
    Packed,
}

struct Pair {
    sender: EventBus,
    bridges: [Bridge; 2],
    received: Arc<Received>,
    _handler: eventbus_core::Subscription,
}

async fn pair(url: &str, path: Path, name: &str) -> Pair {
    // A is a producer: it sends and does not consume its own topic.
    let producer = Bridge::builder(RedisTransport::new(url), "bench-a");
    let a = match path {
        Path::Broadcast => producer.send_broadcast::<OrderPlaced>(name),
        Path::Durable => producer.send_durable::<OrderPlaced>(name),
        Path::Packed => producer
            .send_durable::<OrderPlaced>(name)
            .events_per_entry(PACKED),
    }
    .build()
    .unwrap();
    let consumer = Bridge::builder(RedisTransport::new(url), "bench-b");
    let b = match path {
        Path::Broadcast => consumer.broadcast::<OrderPlaced>(name),
        Path::Durable | Path::Packed => consumer.durable::<OrderPlaced>(name),
    }
    .build()
    .unwrap();
    let sender = bridged(&a);
    let receiver = bridged(&b);
    let received = Arc::new(Received::default());
    let counter = received.clone();
    let handler = receiver.subscribe(move |e: &OrderPlaced| {
        counter.latencies.lock().unwrap().push(age(e));
        let count = counter.count.fetch_add(1, Ordering::SeqCst) + 1;
        if count >= counter.target.load(Ordering::SeqCst) {
            counter.reached.notify_one();
        }
    });
    a.start(&sender).await.unwrap();
    b.start(&receiver).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // let B's subscription settle
    Pair {
        sender,
        bridges: [a, b],
        received,
        _handler: handler,
    }
}

/// Events per second from A's publish to B's handler.
async fn throughput(pair: &Pair) -> f64 {
    let start = Instant::now();
    for n in 0..EVENTS {
        let done = pair.received.count.load(Ordering::SeqCst);
        if n - done >= WINDOW {
            pair.received.wait_for(n - WINDOW / 2).await;
        }
        let report = pair.sender.publish(order(n)).await;
        assert!(report.is_ok(), "{:?}", report.failures());
    }
    pair.received.wait_for(EVENTS).await;
    EVENTS as f64 / start.elapsed().as_secs_f64()
}

/// Events per second A alone writes: until Redis answered every write.
async fn publish_rate(url: &str, path: Path, name: &str) -> f64 {
    let builder = Bridge::builder(RedisTransport::new(url), "bench-a");
    let bridge = match path {
        Path::Broadcast => builder.send_broadcast::<OrderPlaced>(name),
        Path::Durable => builder.send_durable::<OrderPlaced>(name),
        Path::Packed => builder
            .send_durable::<OrderPlaced>(name)
            .events_per_entry(PACKED),
    }
    .build()
    .unwrap();
    let bus = bridged(&bridge);
    bridge.start(&bus).await.unwrap();
    let start = Instant::now();
    for n in 0..EVENTS {
        let _ = bus.publish(order(n)).await;
    }
    while bridge.diagnostics().sent < EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = EVENTS as f64 / start.elapsed().as_secs_f64();
    assert!(bridge.shutdown().await.is_complete());
    rate
}

/// Events per second B drains from the backlog of `stream` (what A alone wrote), from its
/// start until its handler saw every one.
async fn consume_rate(url: &str, stream: &str) -> f64 {
    let bridge = Bridge::builder(RedisTransport::new(url), "bench-b")
        .durable::<OrderPlaced>(stream)
        .group_start(GroupStart::Beginning)
        .build()
        .unwrap();
    let bus = bridged(&bridge);
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    bus.subscribe(move |_: &OrderPlaced| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .forever();
    let start = Instant::now();
    bridge.start(&bus).await.unwrap();
    while count.load(Ordering::SeqCst) < EVENTS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = EVENTS as f64 / start.elapsed().as_secs_f64();
    assert!(bridge.shutdown().await.is_complete());
    rate
}

/// Publish-to-handler latencies at `rate` events per second, sorted.
async fn latencies(pair: &Pair, rate: f64) -> Vec<Duration> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let base = pair.received.count.load(Ordering::SeqCst);
    pair.received.latencies.lock().unwrap().clear();
    let start = Instant::now();
    for n in 0..ROUND_TRIPS as u64 {
        tokio::time::sleep_until((start + interval * n as u32).into()).await;
        let _ = pair.sender.publish(order(n)).await;
    }
    pair.received.wait_for(base + ROUND_TRIPS as u64).await;
    let mut samples = std::mem::take(&mut *pair.received.latencies.lock().unwrap());
    samples.sort();
    samples
}

/// The `ce` field of the first entry of a stream: the exact envelope the bridge writes.
async fn envelope_size(url: &str, stream: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let entry = &entries.ids[0];
    let value: String = entry.get("ce").unwrap();
    value.len()
}

/// `PUBLISH` of the payload with one subscriber attached, so that it fans out to one
/// receiver as ours does.
fn publish_limit(host: &str, port: &str, channel: &str, payload: &str) -> f64 {
    let mut subscriber = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "SUBSCRIBE", channel])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    std::thread::sleep(Duration::from_millis(200));
    let rate = redis_benchmark(host, port, &["PUBLISH", channel, payload]);
    let _ = subscriber.kill();
    let _ = subscriber.wait();
    rate
}

/// Requests per second of one `redis-benchmark -P 16` run of `command`.
fn redis_benchmark(host: &str, port: &str, command: &[&str]) -> f64 {
    let output = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-P", "16", "-n"])
        .arg(EVENTS.to_string())
        .arg("--csv")
        .args(command)
        .output()
        .expect("redis-benchmark runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let row = text.lines().last().unwrap_or_default();
    row.split(',')
        .nth(1)
        .and_then(|field| field.trim_matches('"').parse().ok())
        .unwrap_or_else(|| panic!("unexpected redis-benchmark output: {text}"))
}

fn main() {
    let address =
        std::env::var("EVENTBUS_BENCH_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".to_owned());
    let (host, port) = address.split_once(':').expect("host:port");
    let url = format!("redis://{address}/");
    if redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
        .is_err()
    {
        eprintln!("no Redis server at {address}: skipping the distributed benchmark");
        return;
    }
    let run = format!("bench:{}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The payload size of one envelope, read back from a stream the bridge wrote.
    let probe_stream = format!("{run}:probe");
    let size = rt.block_on(async {
        let probe = pair(&url, Path::Durable, &probe_stream).await;
        let _ = probe.sender.publish(order(1)).await;
        probe.received.wait_for(1).await;
        for bridge in &probe.bridges {
            assert!(bridge.shutdown().await.is_complete());
        }
        envelope_size(&url, &probe_stream).await
    });
    let payload = "x".repeat(size);
    println!("envelope: {size} bytes of CloudEvents JSON; {EVENTS} events per run; packed: up to {PACKED} events per entry");

    let mut rows = Vec::new();
    let mut consumes = Vec::new();
    for (path, label, limit_label) in [
        (Path::Broadcast, "broadcast", "PUBLISH"),
        (Path::Durable, "durable", "XADD"),
        (Path::Packed, "packed", "XADD"),
    ] {
        let (mut publishes, mut rates, mut limits, mut samples) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for trial in 0..TRIALS {
            // The limit, measured right before: the server with the same payload and
            // pipelining.
            let target = format!("{run}:limit-{label}-{trial}");
            limits.push(match path {
                Path::Broadcast => publish_limit(host, port, &target, &payload),
                Path::Durable | Path::Packed => redis_benchmark(
                    host,
                    port,
                    &[
                        "XADD", &target, "MAXLEN", "~", "100000", "*", "ce", &payload,
                    ],
                ),
            });
            let name = format!("{run}:{label}-{trial}");
            let (publish, rate, latencies) = rt.block_on(async {
                let backlog = format!("{name}-publish");
                let publish = publish_rate(&url, path, &backlog).await;
                if path != Path::Broadcast {
                    consumes.push((path, consume_rate(&url, &backlog).await));
                }
                let pair = pair(&url, path, &name).await;
                let rate = throughput(&pair).await;
                let latencies = latencies(&pair, rate / 2.0).await;
                for bridge in &pair.bridges {
                    assert!(bridge.shutdown().await.is_complete());
                }
                (publish, rate, latencies)
            });
            publishes.push(publish);
            rates.push(rate);
            samples.push(latencies);
        }
        rows.push((
            label,
            median(publishes),
            median(rates),
            median(limits),
            limit_label,
            samples,
        ));
    }

    println!("medians of {TRIALS} trials, each ours right after its redis-benchmark run");
    println!(
        "{:<10} {:>22} {:>12} {:>7} {:>12} {:>7} {:>10} {:>10}",
        "path",
        "redis-benchmark -P 16",
        "publish/s",
        "ratio",
        "end to end/s",
        "ratio",
        "p50",
        "p99"
    );
    for (label, publish, rate, limit, limit_label, samples) in &rows {
        let p50 = median(samples.iter().map(|s| percentile(s, 0.5)).collect());
        let p99 = median(samples.iter().map(|s| percentile(s, 0.99)).collect());
        println!(
            "{:<10} {:>14.0} {:<7} {:>12.0} {:>6.0}% {:>12.0} {:>6.0}% {:>10.1?} {:>10.1?}",
            label,
            limit,
            limit_label,
            publish,
            publish / limit * 100.0,
            rate,
            rate / limit * 100.0,
            p50,
            p99,
        );
    }
    println!("latency at half the end-to-end rate");
    for (path, label, row) in [(Path::Durable, "durable", 1), (Path::Packed, "packed", 2)] {
        let limit = rows[row].3;
        let rates = consumes.iter().filter(|(p, _)| *p == path).map(|(_, r)| *r);
        let consume = median(rates.collect());
        println!(
            "{label} backlog drained by B alone: {consume:.0} events/s, {:.0}% of XADD",
            consume / limit * 100.0
        );
    }

    // Leave the server as we found it.
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{run}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    });
}
