//! The events, the handler body and the hand-written `TypeId` map bus that the in-process
//! benches share (`dispatch`, `paired`).
#![allow(dead_code)] // each bench uses a part

use eventbus_core::Event;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Event, Clone)]
pub struct Flat(pub u64);

#[derive(Event, Clone)]
pub struct L1(pub u64);
#[derive(Event, Clone)]
#[event(extends = L1)]
pub struct L2(#[event(base)] pub L1);
#[derive(Event, Clone)]
#[event(extends = L2)]
pub struct L3(#[event(base)] pub L2);
#[derive(Event, Clone)]
#[event(extends = L3)]
pub struct L4(#[event(base)] pub L3);

/// One event at two versions, with an upcaster between them (`versioning`).
#[derive(Event, Clone)]
#[event(name = "bench.priced", version = 1)]
pub struct PricedV1 {
    pub sku: u64,
    pub euros: u64,
}
#[derive(Event, Clone)]
#[event(name = "bench.priced", version = 2)]
pub struct Priced {
    pub sku: u64,
    pub cents: u64,
}

#[eventbus_core::upcast]
pub fn priced_v1_to_v2(old: &PricedV1) -> Priced {
    Priced {
        sku: old.sku,
        cents: old.euros * 100,
    }
}

pub fn l3(n: u64) -> L3 {
    L3(L2(L1(n)))
}
pub fn l4(n: u64) -> L4 {
    L4(l3(n))
}

pub static HITS: AtomicU64 = AtomicU64::new(0);

/// The work every handler does, in every contender.
#[inline(never)]
pub fn work(n: u64) {
    HITS.fetch_add(black_box(n) & 1, Ordering::Relaxed);
}

/// A type-erased handler of the hand-written bus.
pub type AnyHandler = Box<dyn Fn(&dyn Any)>;

/// What a team writes when it decides a framework is too slow.
#[derive(Default)]
pub struct TypeIdBus {
    handlers: HashMap<TypeId, Vec<AnyHandler>>,
}

impl TypeIdBus {
    pub fn subscribe<E: 'static>(&mut self, f: impl Fn(&E) + 'static) {
        self.handlers
            .entry(TypeId::of::<E>())
            .or_default()
            .push(Box::new(move |e| f(e.downcast_ref::<E>().unwrap())));
    }
    pub fn publish<E: 'static>(&self, event: &E) {
        if let Some(handlers) = self.handlers.get(&TypeId::of::<E>()) {
            for h in handlers {
                h(event);
            }
        }
    }
}
