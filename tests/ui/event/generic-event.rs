use eventbus_core::Event;

#[derive(Event)]
pub struct Wrapped<T> {
    pub value: T,
}

fn main() {}
