use eventbus_core::Event;

#[derive(Event)]
pub struct Parent;

#[derive(Event)]
pub struct Other;

#[derive(Event)]
#[event(extends = Parent)]
pub struct Child {
    #[event(base)]
    pub base: Other,
}

fn main() {}
