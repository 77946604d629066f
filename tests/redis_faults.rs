//! Faults under the Redis bridge, on a `redis-server` of this test's own (persistence on, a
//! free loopback port) so killing connections or restarting it disturbs no other test:
//! broadcast resumes by itself, and durable delivery loses nothing.

#[path = "support/redis.rs"]
mod support;

use eventbus_core::bridge::Bridge;
use eventbus_core::redis::RedisTransport;
use eventbus_core::{Event, EventBus};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{connect, wait_until, PrivateRedis};

const LIMIT: Duration = Duration::from_secs(30);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "faults.ping", distributed)]
struct Ping(u64);

#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "faults.job", distributed)]
struct Job(u64);

struct Pair {
    sender_bus: EventBus,
    sender: Bridge,
    receiver: Bridge,
    pings: Arc<Mutex<Vec<u64>>>,
    jobs: Arc<Mutex<HashSet<u64>>>,
}

async fn pair(url: &str) -> Pair {
    let configure = |service: &str| {
        Bridge::builder(RedisTransport::new(url), service)
            .broadcast::<Ping>("faults:pings")
            .durable::<Job>("faults:jobs")
            .block(Duration::from_millis(100))
            .claim_idle(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let sender = configure("sender");
    let sender_bus = support::bus_for(&sender);
    sender.start(&sender_bus).await.unwrap();

    let receiver = configure("receiver");
    let receiver_bus = support::bus_for(&receiver);
    receiver.start(&receiver_bus).await.unwrap();
    let pings = Arc::new(Mutex::new(Vec::new()));
    let jobs = Arc::new(Mutex::new(HashSet::new()));
    let p = pings.clone();
    receiver_bus
        .subscribe(move |e: &Ping| p.lock().unwrap().push(e.0))
        .forever();
    let j = jobs.clone();
    receiver_bus
        .subscribe(move |e: &Job| {
            j.lock().unwrap().insert(e.0);
        })
        .forever();
    Pair {
        sender_bus,
        sender,
        receiver,
        pings,
        jobs,
    }
}

/// Broadcasts pings until one sent after `from` arrives: Pub/Sub loses what is sent during a
/// reconnect, so the test only asks that delivery resumes.
async fn broadcast_resumes(pair: &Pair, from: u64) {
    let mut n = from;
    wait_until("broadcast resumes", LIMIT, || {
        n += 1;
        let _ = pair.sender_bus.emit(Ping(n));
        let pings = pair.pings.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            pings.lock().unwrap().iter().any(|p| *p > from)
        }
    })
    .await;
}

async fn all_jobs_arrive(pair: &Pair, expected: std::ops::Range<u64>) {
    let jobs = pair.jobs.clone();
    let expected_set: HashSet<u64> = expected.collect();
    wait_until("every durable job arrives", LIMIT, || {
        let jobs = jobs.clone();
        let expected_set = expected_set.clone();
        async move { expected_set.is_subset(&jobs.lock().unwrap()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_under_the_bridge() {
    let server = PrivateRedis::start();
    let pair = pair(&server.url()).await;
    broadcast_resumes(&pair, 0).await;

    let mut admin = connect(&server.url()).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    let killed_normal: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(
        killed >= 1 && killed_normal >= 2,
        "pubsub {killed}, normal {killed_normal}"
    );

    for n in 0..50 {
        pair.sender_bus.emit(Job(n)).unwrap();
    }
    broadcast_resumes(&pair, 1_000).await;
    all_jobs_arrive(&pair, 0..50).await;
    assert!(pair.receiver.diagnostics().connection_errors >= 1);

    assert!(pair.sender.shutdown().await.is_complete());
    assert!(pair.receiver.shutdown().await.is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_with_events_sent_while_it_was_down() {
    let mut server = PrivateRedis::start();
    let pair = pair(&server.url()).await;
    for n in 0..20 {
        pair.sender_bus.emit(Job(n)).unwrap();
    }
    all_jobs_arrive(&pair, 0..20).await;

    // The server goes down; the jobs emitted meanwhile wait in the sender, retried with
    // back-off, and are written once it is back.
    server.stop();
    for n in 20..40 {
        pair.sender_bus.emit(Job(n)).unwrap();
    }
    let sender = pair.sender.clone();
    wait_until("the sender met the outage", LIMIT, || {
        let sender = sender.clone();
        async move { sender.diagnostics().connection_errors >= 1 }
    })
    .await;
    server.start_again();

    all_jobs_arrive(&pair, 0..40).await;
    broadcast_resumes(&pair, 1_000).await;
    let sent = pair.sender.diagnostics();
    assert!(sent.sent >= 40, "{sent:?}");
    assert_eq!(
        (sent.send_failed_reply, sent.unsent_at_shutdown),
        (0, 0),
        "durable sends are retried, never dropped: {sent:?}"
    );

    assert!(pair.sender.shutdown().await.is_complete());
    assert!(pair.receiver.shutdown().await.is_complete());
    drop(server);
}
