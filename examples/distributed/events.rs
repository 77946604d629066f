//! The events the two services share. Both binaries compile this file, as two services would
//! share a crate of event types.

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

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/";
pub const ORDERS_STREAM: &str = "shop:orders";
pub const NOTIFICATIONS: &str = "shop:notifications";
