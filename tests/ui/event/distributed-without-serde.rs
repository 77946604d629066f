use eventbus_core::Event;

#[derive(Event)]
#[event(name = "local.only", distributed)]
pub struct NotSerde {
    pub id: u64,
}

fn main() {}
