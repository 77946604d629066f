//! Async handler futures built in place: a publish that awaits its async handlers one after
//! another builds each one's future in one buffer, allocated once per publish, instead of
//! boxing a future per handler call.
//!
//! The handler's future type is known where the handler is subscribed (its [`AsyncCall`]
//! impl), so its layout is known there too; [`InPlace`] keeps it with three functions that
//! start, poll and drop such a future at an address. [`FutureSlot`] is the buffer.
//!
//! This is the crate's only unsafe code (the workspace denies it elsewhere); every block says
//! why it is sound. The tests below (futures of every size, panics while building and
//! polling, a publish dropped mid-handler) run under Miri in CI (`scripts/miri`, Stacked and
//! Tree Borrows), and `tests/allocations.rs` and the async tests exercise it further.

#![allow(unsafe_code)]

use super::{AsyncCall, BoxFuture, Context, HandlerResult, SharedState, StateCursor};
use crate::event::{event_part, Event, EventPart};
use std::alloc::Layout;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{self, Poll};

/// An async handler that can build its future at a given address.
///
/// # Safety
/// An implementor's `start` writes a value of exactly `layout()` at `place`, and `poll` /
/// `drop_future` treat `place` as that value, pinned.
pub unsafe trait InPlace: Send + Sync {
    /// The layout of this handler's future.
    fn layout(&self) -> Layout;

    /// Builds the future for one call at `place`.
    ///
    /// # Safety
    /// `place` is valid for writes of `layout()` and aligned to it, holds no live future, and
    /// is neither moved nor reused until [`drop_future`](Self::drop_future) is called on it,
    /// which must happen before `'a` ends.
    unsafe fn start<'a>(&'a self, place: NonNull<u8>, part: &'a EventPart, ctx: Context<'a>);

    /// Polls the future at `place`.
    ///
    /// # Safety
    /// `place` holds a live future built by this handler's `start`.
    unsafe fn poll(&self, place: NonNull<u8>, cx: &mut task::Context<'_>) -> Poll<HandlerResult>;

    /// Drops the future at `place`, which then holds none.
    ///
    /// # Safety
    /// `place` holds a live future built by this handler's `start`.
    unsafe fn drop_future(&self, place: NonNull<u8>);

    /// The future for one call, boxed: for calls that run side by side or under a policy.
    fn boxed<'a>(&'a self, part: &'a EventPart, ctx: Context<'a>) -> BoxFuture<'a, HandlerResult>;
}

/// A closure or fn subscribed as an async handler, with the state it takes.
pub(crate) struct AsyncClosure<E, Args, H> {
    handler: H,
    states: Box<[SharedState]>,
    _shape: PhantomData<fn(&E, Args)>,
}

impl<E, Args, H> AsyncClosure<E, Args, H> {
    pub(crate) fn new(handler: H, states: Box<[SharedState]>) -> Self {
        AsyncClosure {
            handler,
            states,
            _shape: PhantomData,
        }
    }
}

/// The future of `H` for the borrow `'a`.
type FutureOf<'a, E, Args, H> = <H as AsyncCall<'a, E, Args>>::Future;

// SAFETY: `start` writes a `FutureOf<'a, ..>` at `place`, and the layout of that type does not
// depend on `'a` (lifetimes do not change layout), so `layout()` (taken at `'static`) is its
// layout; `poll` and `drop_future` use `place` as the same type. The future is `Send`
// (`AsyncCall::Future: Send`), and `H` is `Send + Sync`.
unsafe impl<E: Event, Args: 'static, H> InPlace for AsyncClosure<E, Args, H>
where
    H: for<'a> AsyncCall<'a, E, Args>,
{
    fn layout(&self) -> Layout {
        Layout::new::<FutureOf<'static, E, Args, H>>()
    }

    unsafe fn start<'a>(&'a self, place: NonNull<u8>, part: &'a EventPart, ctx: Context<'a>) {
        let mut cursor = StateCursor::new(&self.states);
        let future = self.handler.call(event_part::<E>(part), ctx, &mut cursor);
        // SAFETY: the caller gives a place valid and aligned for this layout, holding nothing.
        unsafe { place.cast::<FutureOf<'a, E, Args, H>>().write(future) };
    }

    unsafe fn poll(&self, place: NonNull<u8>, cx: &mut task::Context<'_>) -> Poll<HandlerResult> {
        // SAFETY: `place` holds a live future of this type (caller's contract), and it is never
        // moved until dropped there: pinning it is sound. The lifetime is the one it was built
        // with; it is erased here because the caller guarantees the borrow is still live.
        let future = unsafe { &mut *place.cast::<FutureOf<'static, E, Args, H>>().as_ptr() };
        unsafe { Pin::new_unchecked(future) }.poll(cx)
    }

    unsafe fn drop_future(&self, place: NonNull<u8>) {
        // SAFETY: `place` holds a live future of this type (caller's contract).
        unsafe {
            place
                .cast::<FutureOf<'static, E, Args, H>>()
                .as_ptr()
                .drop_in_place()
        };
    }

    fn boxed<'a>(&'a self, part: &'a EventPart, ctx: Context<'a>) -> BoxFuture<'a, HandlerResult> {
        let mut cursor = StateCursor::new(&self.states);
        Box::pin(self.handler.call(event_part::<E>(part), ctx, &mut cursor))
    }
}

/// A `#[handler]` async fn: its generated entry point returns a boxed future already.
pub(crate) struct AsyncFn {
    pub(crate) f: for<'a, 's> fn(
        &'a EventPart,
        Context<'a>,
        &'s [SharedState],
    ) -> BoxFuture<'a, HandlerResult>,
    pub(crate) states: Box<[SharedState]>,
}

// SAFETY: the future at `place` is a `BoxFuture<'a, ..>`, whose layout does not depend on
// `'a`; `poll` and `drop_future` use it as that type.
unsafe impl InPlace for AsyncFn {
    fn layout(&self) -> Layout {
        Layout::new::<BoxFuture<'static, HandlerResult>>()
    }

    unsafe fn start<'a>(&'a self, place: NonNull<u8>, part: &'a EventPart, ctx: Context<'a>) {
        let future = (self.f)(part, ctx, &self.states);
        // SAFETY: the caller gives a place valid and aligned for this layout, holding nothing.
        unsafe { place.cast::<BoxFuture<'a, HandlerResult>>().write(future) };
    }

    unsafe fn poll(&self, place: NonNull<u8>, cx: &mut task::Context<'_>) -> Poll<HandlerResult> {
        // SAFETY: `place` holds a live boxed future (caller's contract); a `Pin<Box<_>>` is
        // `Unpin`, so a plain `&mut` to it may poll it.
        let future = unsafe { &mut *place.cast::<BoxFuture<'static, HandlerResult>>().as_ptr() };
        future.as_mut().poll(cx)
    }

    unsafe fn drop_future(&self, place: NonNull<u8>) {
        // SAFETY: `place` holds a live boxed future (caller's contract).
        unsafe {
            place
                .cast::<BoxFuture<'static, HandlerResult>>()
                .as_ptr()
                .drop_in_place()
        };
    }

    fn boxed<'a>(&'a self, part: &'a EventPart, ctx: Context<'a>) -> BoxFuture<'a, HandlerResult> {
        (self.f)(part, ctx, &self.states)
    }
}

/// The buffer of one publish that its async handlers' futures are built in, one at a time.
/// Allocated at the first call that needs it, with the largest layout of the plan.
pub struct FutureSlot {
    memory: Option<(NonNull<u8>, Layout)>,
}

// SAFETY: the slot owns plain memory; the futures built in it are `Send` (see `InPlace`), and
// each is dropped before the call that built it returns.
unsafe impl Send for FutureSlot {}

impl FutureSlot {
    pub(crate) fn new() -> Self {
        FutureSlot { memory: None }
    }

    /// Memory for a value of `layout` (the plan's largest is `hint`), holding nothing.
    fn place(&mut self, layout: Layout, hint: Layout) -> NonNull<u8> {
        if let Some((memory, current)) = self.memory {
            if current.size() >= layout.size() && current.align() >= layout.align() {
                return memory;
            }
        }
        self.release();
        let wanted = Layout::from_size_align(
            layout.size().max(hint.size()).max(1),
            layout.align().max(hint.align()),
        )
        .expect("a future's layout is valid");
        // SAFETY: `wanted` has a non-zero size.
        let memory = NonNull::new(unsafe { std::alloc::alloc(wanted) })
            .unwrap_or_else(|| std::alloc::handle_alloc_error(wanted));
        self.memory = Some((memory, wanted));
        memory
    }

    fn release(&mut self) {
        if let Some((memory, layout)) = self.memory.take() {
            // SAFETY: allocated in `place` with this layout; no future lives in it.
            unsafe { std::alloc::dealloc(memory.as_ptr(), layout) };
        }
    }
}

impl Drop for FutureSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Calls an async handler with its future built in `slot`, at once; the call's future then
/// polls it. A panic while the future is built or polled is its `Err`; the handler's future is
/// dropped when the call's is (also when it is cancelled). Not an `async fn`: the call's
/// future is three words, where an `async fn` would store its arguments and its locals, and
/// every publish's future would carry them.
pub(crate) fn call_in_place<'a>(
    handler: &'a dyn InPlace,
    slot: &'a mut FutureSlot,
    hint: Layout,
    part: &'a EventPart,
    ctx: Context<'a>,
) -> InPlaceCall<'a> {
    let place = slot.place(handler.layout(), hint);
    // SAFETY: `place` is valid and aligned for the handler's layout and holds nothing; the
    // slot stays borrowed mutably by the `Live` returned (lifetime `'a`), so nothing moves or
    // reuses it while the future lives; `Live` drops the future before `'a` ends.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
        handler.start(place, part, ctx)
    })) {
        Ok(()) => InPlaceCall::Live(Live {
            handler,
            place,
            slot: PhantomData,
        }),
        Err(panic) => InPlaceCall::Failed(Some(panic)),
    }
}

/// The future of [`call_in_place`]: the handler's future, or the panic that building it
/// raised.
pub(crate) enum InPlaceCall<'a> {
    Live(Live<'a>),
    Failed(Option<super::Panic>),
}

impl Future for InPlaceCall<'_> {
    type Output = Result<HandlerResult, super::Panic>;

    fn poll(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            InPlaceCall::Live(live) => live.poll(cx),
            InPlaceCall::Failed(panic) => Poll::Ready(Err(panic
                .take()
                .expect("a call's future is not polled after it completed"))),
        }
    }
}

/// A future living in a slot: dropped with this guard (also when the call is cancelled).
pub(crate) struct Live<'a> {
    handler: &'a dyn InPlace,
    place: NonNull<u8>,
    /// The slot the future lives in, borrowed for as long as it does.
    slot: PhantomData<&'a mut FutureSlot>,
}

// SAFETY: it only points at a `Send` future that it polls and drops; `handler` is `Sync`.
unsafe impl Send for Live<'_> {}

impl Live<'_> {
    fn poll(&mut self, cx: &mut task::Context<'_>) -> Poll<Result<HandlerResult, super::Panic>> {
        // SAFETY: the future at `place` is live until `self` is dropped.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            self.handler.poll(self.place, cx)
        })) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        // A future whose drop panics is dropped no further (its memory is freed by the slot).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: the future at `place` is live, and is dropped only here.
            unsafe { self.handler.drop_future(self.place) }
        }));
    }
}

// Run under Miri as well (`cargo +nightly miri test -p eventbus-core --lib in_place`): these
// drive every unsafe block above through the public API, with futures of different sizes and
// alignments, panics before and after an await, and a publish dropped mid-handler.
#[cfg(test)]
mod tests {
    use crate::{Event, EventBus, FailureKind};
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Waker};

    #[derive(Event, Clone, Debug)]
    struct Tick(u64);

    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `future` until ready; the handlers here only ever yield, never wait.
    fn run<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = TaskContext::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
        }
    }

    /// Ready at the second poll.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }

    #[test]
    fn futures_of_every_size_run_in_one_slot_and_are_dropped_once() {
        let bus = EventBus::builder().build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let sums = Arc::new(AtomicUsize::new(0));
        for size in [0usize, 24, 1024] {
            let (drops, sums) = (drops.clone(), sums.clone());
            bus.subscribe(move |tick: &Tick| {
                let guard = Counted(drops.clone());
                let sums = sums.clone();
                let n = tick.0 as usize;
                async move {
                    // A buffer of `size` bytes and 16-byte alignment held across the await.
                    #[repr(align(16))]
                    struct Aligned([u8; 1024]);
                    let buffer = Aligned([n as u8; 1024]);
                    yield_once().await;
                    assert_eq!(std::ptr::from_ref(&buffer) as usize % 16, 0);
                    sums.fetch_add(buffer.0[..size].len() * n, Ordering::SeqCst);
                    drop(guard);
                }
            })
            .forever();
        }
        for n in 1..=3 {
            assert!(run(bus.publish(Tick(n))).is_ok());
        }
        assert_eq!(drops.load(Ordering::SeqCst), 9);
        assert_eq!(sums.load(Ordering::SeqCst), (24 + 1024) * 6);
    }

    #[test]
    fn a_panic_while_building_or_polling_fails_that_handler_only() {
        let bus = EventBus::builder().build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        bus.subscribe(move |tick: &Tick| {
            if tick.0 == 0 {
                panic!("building");
            }
            let guard = Counted(d.clone());
            let n = tick.0;
            async move {
                let _guard = guard;
                yield_once().await;
                if n == 1 {
                    panic!("polling");
                }
            }
        })
        .forever();
        bus.subscribe(|_: &Tick| yield_once()).forever();
        for (n, panic) in [(0, Some("building")), (1, Some("polling")), (2, None)] {
            let report = run(bus.publish(Tick(n)));
            assert_eq!(report.succeeded(), if panic.is_some() { 1 } else { 2 });
            if let Some(message) = panic {
                assert_eq!(
                    report.failures()[0].kind(),
                    &FailureKind::Panic(message.into())
                );
            }
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_publish_dropped_mid_handler_drops_its_future() {
        let bus = EventBus::builder().build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        bus.subscribe(move |_: &Tick| {
            let guard = Counted(d.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }
        })
        .forever();
        let mut cx = TaskContext::from_waker(Waker::noop());
        for round in 1..=3 {
            let mut publish = Box::pin(bus.publish(Tick(round)));
            assert!(publish.as_mut().poll(&mut cx).is_pending());
            drop(publish);
            assert_eq!(drops.load(Ordering::SeqCst), round as usize);
        }
    }
}
