use eventbus_core::Event;

#[derive(Event)]
pub struct Parent;

#[derive(Event)]
pub struct Child {
    #[event(base)]
    pub base: Parent,
}

fn main() {}
