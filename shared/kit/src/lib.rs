//! The shared service kit: configuration, telemetry, the gRPC server stack, auth, errors,
//! storage, the transactional outbox and its event feed, the feed consumer, and the
//! skeleton a service is built on. Every custos service is built from these pieces and
//! re-implements none of them. How stores are written is in `DESIGN.md` beside this crate.

pub mod audit;
pub mod auth;
pub mod client;
pub mod config;
pub mod consumer;
pub mod error;
pub mod feed;
pub mod idempotency;
pub mod metrics;
pub mod outbox;
pub mod page;
pub mod propagation;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod time_fmt;

#[doc(hidden)]
pub use sqlx as __sqlx;
