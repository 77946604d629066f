use eventbus_core::Event;
use std::cell::Cell;

#[derive(Event)]
pub struct Counted {
    pub hits: Cell<u64>,
}

fn main() {}
