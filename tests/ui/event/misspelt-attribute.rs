use eventbus_core::Event;

#[derive(Event)]
pub struct Parent;

#[derive(Event)]
#[event(extend = Parent)]
pub struct Child {
    #[event(base)]
    pub base: Parent,
}

fn main() {}
