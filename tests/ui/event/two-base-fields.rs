use eventbus_core::Event;

#[derive(Event)]
pub struct Parent;

#[derive(Event)]
#[event(extends = Parent)]
pub struct Child {
    #[event(base)]
    pub first: Parent,
    #[event(base)]
    pub second: Parent,
}

fn main() {}
