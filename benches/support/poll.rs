//! Shared by the benches.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls once: a publish to sync handlers (or to a saga on the in-memory store) completes in
/// its first poll, so no executor cost is measured for any contender polled this way.
pub fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("expected to complete in one poll"),
    }
}
