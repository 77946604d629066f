//! The brokers of the transport conformance suite: each makes bridges for a service, writes raw
//! messages where a durable subscriber reads them, counts dead letters, and (as a private
//! instance) stops and starts again.
#![allow(dead_code)]

use crate::redis_support::{PrivateRedis, SHARED_URL};
use eventbus_core::bridge::{Bridge, BridgeBuilder, Transport};
use eventbus_core::rabbitmq::RabbitTransport;
use eventbus_core::redis::{GroupStart, RedisTransport};
use eventbus_core::EventType;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SHARED_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A broker the conformance suite runs against.
pub trait Broker {
    type Transport: Transport;

    /// Whether a durable topic keeps what is sent to it before any service subscribed (a
    /// Redis stream does; a RabbitMQ exchange with no queue bound returns it).
    const KEEPS_UNSUBSCRIBED: bool;

    /// A bridge builder for `service`, with short retry delays so the suite runs fast.
    fn builder(&self, service: &str) -> BridgeBuilder<Self::Transport>;

    /// `builder`, whose routes send durable events, with this broker's sending settings
    /// (packed entries, for the packed Redis variant).
    fn sends(&self, builder: BridgeBuilder<Self::Transport>) -> BridgeBuilder<Self::Transport> {
        builder
    }

    /// Writes `payload` as it stands where the durable subscribers of `topic` that route
    /// `scope` read it.
    async fn inject(&self, topic: &str, scope: &'static EventType, payload: &[u8]);

    /// Dead letters `service` has on `topic`.
    async fn dead_letters(&self, service: &str, topic: &str) -> usize;

    /// Kills the broker (`kill -9`: it keeps only what it had made durable) and starts it
    /// again; only private brokers can.
    fn crash_and_restart(&mut self);

    /// Removes what `services` left on the broker for `topic`.
    async fn remove(&self, topic: &str, services: &[&str]);
}

/// Redis, shared or private; its senders pack up to `events_per_entry` events per entry.
pub struct Redis {
    url: String,
    private: Option<PrivateRedis>,
    events_per_entry: usize,
}

impl Redis {
    pub fn shared() -> Self {
        Redis {
            url: SHARED_URL.to_owned(),
            private: None,
            events_per_entry: 1,
        }
    }

    pub fn private() -> Self {
        let server = PrivateRedis::start();
        Redis {
            url: server.url(),
            private: Some(server),
            events_per_entry: 1,
        }
    }

    /// Its senders pack up to `events` durable events in one entry.
    pub fn packed(self, events: usize) -> Self {
        Redis {
            events_per_entry: events,
            ..self
        }
    }
}

impl Broker for Redis {
    type Transport = RedisTransport;
    const KEEPS_UNSUBSCRIBED: bool = true;

    fn builder(&self, service: &str) -> BridgeBuilder<RedisTransport> {
        Bridge::builder(RedisTransport::new(&self.url), service)
            .block(Duration::from_millis(100))
            .claim_idle(Duration::from_millis(300))
            .group_start(GroupStart::Beginning)
    }

    fn sends(&self, builder: BridgeBuilder<RedisTransport>) -> BridgeBuilder<RedisTransport> {
        builder.events_per_entry(self.events_per_entry)
    }

    async fn inject(&self, topic: &str, _scope: &'static EventType, payload: &[u8]) {
        let mut redis = crate::redis_support::connect(&self.url).await;
        let _: String = redis::cmd("XADD")
            .arg(topic)
            .arg("*")
            .arg("ce")
            .arg(payload)
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    async fn dead_letters(&self, service: &str, topic: &str) -> usize {
        // One dead-letter stream per stream, shared by the groups: count this service's.
        let mut redis = crate::redis_support::connect(&self.url).await;
        let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(format!("{topic}:dead"))
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .unwrap();
        entries
            .ids
            .iter()
            .filter(|entry| entry.get::<String>("group").as_deref() == Some(service))
            .count()
    }

    async fn remove(&self, topic: &str, _services: &[&str]) {
        let mut redis = crate::redis_support::connect(&self.url).await;
        let _: () = redis::cmd("DEL")
            .arg(topic)
            .arg(format!("{topic}:dead"))
            .query_async(&mut redis)
            .await
            .unwrap();
    }

    fn crash_and_restart(&mut self) {
        let server = self
            .private
            .as_mut()
            .expect("only a private Redis restarts");
        server.kill();
        server.start_again();
    }
}

/// RabbitMQ, shared or private.
pub struct Rabbit {
    url: String,
    private: Option<PrivateRabbit>,
}

impl Rabbit {
    pub fn shared() -> Self {
        Rabbit {
            url: SHARED_AMQP.to_owned(),
            private: None,
        }
    }

    pub fn private() -> Self {
        let node = PrivateRabbit::start();
        Rabbit {
            url: node.url(),
            private: Some(node),
        }
    }

    async fn channel(&self) -> (Connection, lapin::Channel) {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ answers (the CI script starts it)");
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    }
}

impl Broker for Rabbit {
    type Transport = RabbitTransport;
    const KEEPS_UNSUBSCRIBED: bool = false;

    fn builder(&self, service: &str) -> BridgeBuilder<RabbitTransport> {
        Bridge::builder(RabbitTransport::new(&self.url), service)
            .retry_delay(Duration::from_millis(200))
    }

    async fn inject(&self, topic: &str, scope: &'static EventType, payload: &[u8]) {
        let (_connection, channel) = self.channel().await;
        channel
            .basic_publish(
                topic.into(),
                eventbus_core::rabbitmq::routing_key(scope).into(),
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
    }

    async fn dead_letters(&self, service: &str, topic: &str) -> usize {
        let (_connection, channel) = self.channel().await;
        let queue = channel
            .queue_declare(
                format!("{service}.{topic}.dead").into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        queue.message_count() as usize
    }

    async fn remove(&self, topic: &str, services: &[&str]) {
        let (_connection, channel) = self.channel().await;
        for service in services {
            for queue in [
                format!("{service}.{topic}"),
                format!("{service}.{topic}.dead"),
            ] {
                channel
                    .queue_delete(queue.into(), Default::default())
                    .await
                    .unwrap();
            }
        }
        channel
            .exchange_delete(topic.into(), Default::default())
            .await
            .unwrap();
    }

    fn crash_and_restart(&mut self) {
        let node = self
            .private
            .as_mut()
            .expect("only a private RabbitMQ restarts");
        node.kill();
        node.start_again();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A RabbitMQ node of this test's own, on free loopback ports, with its data in a temporary
/// folder (kept across `stop` and `start_again`).
pub struct PrivateRabbit {
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRabbit {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("eventbus-rabbit-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        // The node runs as whoever runs the test; let it write its folder either way.
        let _ = Command::new("chmod").arg("777").arg(&dir).status();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        std::fs::write(dir.join("plugins"), "").unwrap();
        let mut node = PrivateRabbit {
            port,
            dist_port: free_port(),
            dir,
            child: None,
        };
        node.spawn();
        node
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn node(&self) -> String {
        format!("eventbus{}@localhost", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_NODENAME", self.node())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("plugins"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server is installed (the CI script installs it)");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "rabbitmq-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the node again after [`stop`](Self::stop), on the same ports and data.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Kills the node's Erlang VM with `SIGKILL`: quorum queues keep what they confirmed.
    pub fn kill(&mut self) {
        let pid = Command::new("rabbitmqctl")
            .args(["-n", &self.node(), "eval", "os:getpid()."])
            .output()
            .expect("rabbitmqctl runs");
        let pid = String::from_utf8_lossy(&pid.stdout)
            .trim()
            .trim_matches('"')
            .to_owned();
        assert!(pid.parse::<u32>().is_ok(), "the node's OS pid, not {pid:?}");
        let _ = Command::new("kill").args(["-9", &pid]).status();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the node does not die"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node; it keeps its data (durable queues and persistent messages).
    pub fn stop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node(), "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let start = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the node does not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
