use eventbus_core::Event;

#[derive(Event)]
#[event(extends = Loop)]
pub struct Loop {
    #[event(base)]
    pub base: Box<Loop>,
}

fn main() {}
