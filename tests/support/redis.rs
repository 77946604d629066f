//! Shared helpers of the Redis tests: unique names, raw commands, waiting, and a private
//! `redis-server` for the tests that kill or restart it.
#![allow(dead_code)]

use eventbus_core::EventId;
use redis::Commands;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SHARED_URL: &str = "redis://127.0.0.1:6379/";

/// A name no other test (or earlier run) uses. Tests do not remove their streams; the first
/// name a test binary makes sweeps away what earlier runs left (see [`sweep_earlier_runs`]).
pub fn unique(prefix: &str) -> String {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        std::thread::spawn(sweep_earlier_runs);
    });
    format!("eventbus-test:{prefix}:{}", EventId::new())
}

/// Deletes the test keys of the shared server whose name holds an id made more than an hour
/// ago: earlier runs' streams, while a run under way elsewhere on the server keeps its own.
pub fn sweep_earlier_runs() {
    let Ok(mut redis) = redis::Client::open(SHARED_URL).and_then(|c| c.get_connection()) else {
        return;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    let keys: Vec<String> = match redis.scan_match("eventbus-test:*") {
        Ok(keys) => keys.filter_map(Result::ok).collect(),
        Err(_) => return,
    };
    let old: Vec<String> = keys
        .into_iter()
        .filter(|key| made_at_ms(key).is_some_and(|ms| ms + 3_600_000 < now_ms))
        .collect();
    if !old.is_empty() {
        let _: redis::RedisResult<()> = redis.del(old);
    }
}

/// When the id in a name made by [`unique`] was made: a UUIDv7 starts with its milliseconds
/// since 1970.
fn made_at_ms(key: &str) -> Option<u64> {
    let id = key
        .split(':')
        .find(|part| part.parse::<EventId>().is_ok())?;
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    u64::from_str_radix(&hex, 16).ok()
}

pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers (the CI script starts it)")
}

/// Polls `check` until it holds, failing the test after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A started bus of `service` whose bridge carries every `E` over the durable `stream` both
/// ways, polling every 100 ms.
pub async fn durable_service<E: eventbus_core::Event>(
    service: &str,
    stream: &str,
) -> (eventbus_core::EventBus, eventbus_core::bridge::Bridge) {
    let bridge = eventbus_core::bridge::Bridge::builder(
        eventbus_core::redis::RedisTransport::new(SHARED_URL),
        service,
    )
    .durable::<E>(stream)
    .block(Duration::from_millis(100))
    .build()
    .unwrap();
    let bus = bus_for(&bridge);
    bridge.start(&bus).await.unwrap();
    (bus, bridge)
}

/// A bus whose events `bridge` sends: its outbound middleware and nothing else.
pub fn bus_for(bridge: &eventbus_core::bridge::Bridge) -> eventbus_core::EventBus {
    eventbus_core::EventBus::builder()
        .middleware(bridge.outbound())
        .build()
        .unwrap()
}

/// The CloudEvent (field `ce`) of the first entry of `stream`, once it holds one.
pub async fn first_cloudevent(stream: &str, limit: Duration) -> String {
    use redis::AsyncCommands;
    let redis = connect(SHARED_URL).await;
    wait_until("an entry is written", limit, || {
        let mut redis = redis.clone();
        async move { redis.xlen::<_, usize>(stream).await.unwrap() >= 1 }
    })
    .await;
    let entries: redis::streams::StreamRangeReply = redis.clone().xrange_all(stream).await.unwrap();
    redis::from_redis_value(entries.ids[0].map["ce"].clone()).unwrap()
}

/// A `redis-server` of this test's own on a free loopback port, with persistence on.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("eventbus-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = PrivateRedis {
            port,
            dir,
            child: None,
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the CI script installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Kills the server (`SIGKILL`: no shutdown, no last save); with `appendfsync always` it
    /// keeps every write it answered.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server; it keeps its data on disk.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "shutdown"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(5) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
