use eventbus_core::Event;

#[derive(Event)]
pub struct Parent;

#[derive(Event)]
#[event(extends = Parent)]
pub struct Child {
    #[event(parent)]
    pub base: Parent,
}

fn main() {}
