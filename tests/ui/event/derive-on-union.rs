use eventbus_core::Event;

#[derive(Event)]
pub union Bits {
    pub a: u32,
    pub b: f32,
}

fn main() {}
