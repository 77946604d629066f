//! The events the services share. Each binary compiles this file, as services would share a
//! crate of event types; each uses part of it.
#![allow(dead_code)]

use eventbus_core::Event;
use serde::{Deserialize, Serialize};

/// Root of everything the shop sends between services.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(name = "shop.event", distributed)]
pub struct ShopEvent {
    pub order_id: String,
}

/// Sent by `orders` on a durable stream: shipping must not miss one.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = ShopEvent, name = "shop.order_placed", distributed)]
pub struct OrderPlaced {
    #[event(base)]
    pub base: ShopEvent,
    pub address: String,
}

/// Broadcast by `shipping` to every instance of every service.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = ShopEvent, name = "shop.parcel_shipped", distributed)]
pub struct ParcelShipped {
    #[event(base)]
    pub base: ShopEvent,
    pub tracking: String,
}

/// Sent by `orders` once the payment went through (durable: fulfillment must not miss one).
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = ShopEvent, name = "shop.payment_captured", distributed)]
pub struct PaymentCaptured {
    #[event(base)]
    pub base: ShopEvent,
    pub amount_cents: u64,
}

/// Broadcast by the `fulfillment` saga once an order is both placed and paid.
#[derive(Event, Clone, Debug, Serialize, Deserialize)]
#[event(extends = ShopEvent, name = "shop.fulfillment_started", distributed)]
pub struct OrderFulfillmentStarted {
    #[event(base)]
    pub base: ShopEvent,
    pub amount_cents: u64,
}

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const ORDERS_STREAM: &str = "shop:orders";
pub const PAYMENTS_STREAM: &str = "shop:payments";
pub const NOTIFICATIONS: &str = "shop:notifications";
/// Where the fulfillment saga keeps its instances (`DATABASE_URL` overrides it).
pub const DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The broker every service of the example uses: Redis, or RabbitMQ when
/// `EVENTBUS_TRANSPORT=rabbitmq`. The services route and handle events the same way on both.
pub fn transport() -> Box<dyn eventbus_core::bridge::Transport> {
    match std::env::var("EVENTBUS_TRANSPORT").as_deref() {
        Ok("rabbitmq") => Box::new(eventbus_core::rabbitmq::RabbitTransport::new(AMQP_URL)),
        Ok("redis") | Err(_) => Box::new(eventbus_core::redis::RedisTransport::new(REDIS_URL)),
        Ok(other) => panic!("EVENTBUS_TRANSPORT is `redis` or `rabbitmq`, not `{other}`"),
    }
}
