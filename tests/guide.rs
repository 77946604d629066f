//! The user guide's code, compiled and run as doctests: every Rust block of the README and of
//! each page of `docs/` (`cargo test -p eventbus-tests --doc`).

#[doc = include_str!("../README.md")]
pub mod readme {}

/// The pages of `docs/`.
pub mod docs {
    #[doc = include_str!("../docs/getting-started.md")]
    pub mod getting_started {}
    #[doc = include_str!("../docs/hierarchies.md")]
    pub mod hierarchies {}
    #[doc = include_str!("../docs/handlers.md")]
    pub mod handlers {}
    #[doc = include_str!("../docs/dispatch-order.md")]
    pub mod dispatch_order {}
    #[doc = include_str!("../docs/errors.md")]
    pub mod errors {}
    #[doc = include_str!("../docs/failure-policy.md")]
    pub mod failure_policy {}
    #[doc = include_str!("../docs/middleware.md")]
    pub mod middleware {}
    #[doc = include_str!("../docs/lifecycle.md")]
    pub mod lifecycle {}
    #[doc = include_str!("../docs/testing.md")]
    pub mod testing {}
    #[doc = include_str!("../docs/distributed.md")]
    pub mod distributed {}
    #[doc = include_str!("../docs/transports.md")]
    pub mod transports {}
    #[doc = include_str!("../docs/delivery-guarantees.md")]
    pub mod delivery_guarantees {}
    #[doc = include_str!("../docs/versioning.md")]
    pub mod versioning {}
    #[doc = include_str!("../docs/topology.md")]
    pub mod topology {}
    #[doc = include_str!("../docs/sagas.md")]
    pub mod sagas {}
    #[doc = include_str!("../docs/performance.md")]
    pub mod performance {}
    #[doc = include_str!("../docs/architecture.md")]
    pub mod architecture {}
}
