//! Every supported handler shape compiles.
use eventbus_core::{handler, Context, Event, State};

#[derive(Event)]
pub struct Ping;

pub struct Db;

#[handler]
fn plain(_: &Ping) {}

#[handler]
fn fallible(_: &Ping) -> Result<(), std::io::Error> {
    Ok(())
}

#[handler]
fn displayable(_: &Ping) -> Result<(), &'static str> {
    Ok(())
}

#[handler(priority = -3)]
fn context_first(_ctx: Context, _: &Ping, _db: State<Db>) {}

#[handler(name = "ping.async")]
async fn asynchronous(_: &Ping, ctx: Context) {
    let _ = ctx.publish(Ping).await;
}

#[handler]
async fn explicit_lifetime<'a>(_: &'a Ping, _ctx: Context<'a>) -> Result<(), String> {
    Ok(())
}

fn main() {}

fn page_oncall(failure: &eventbus_core::HandlerFailure, ctx: Context) {
    let _ = (failure.attempts(), ctx.event_name());
}

#[handler(timeout_ms = 250, retry = 2, backoff_ms = 10, on_error = page_oncall)]
async fn with_policy(_: &Ping) -> Result<(), String> {
    Ok(())
}
