use eventbus_core::Event;
use std::rc::Rc;

#[derive(Event)]
pub struct Shared {
    pub id: u64,
    pub cache: Rc<String>,
}

fn main() {}
