//! The shared service kit: configuration, telemetry, the gRPC server stack, auth, errors,
//! storage, the transactional outbox and its event feed, and the feed consumer. Every
//! custos service is built from these pieces and re-implements none of them.

pub mod auth;
pub mod client;
pub mod config;
pub mod consumer;
pub mod db_time;
pub mod error;
pub mod feed;
pub mod metrics;
pub mod outbox;
pub mod propagation;
pub mod server;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod time_fmt;
