use eventbus_core::Event;

pub struct NotAnEvent;

#[derive(Event)]
#[event(extends = NotAnEvent)]
pub struct Child {
    #[event(base)]
    pub base: NotAnEvent,
}

fn main() {}
