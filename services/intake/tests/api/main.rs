//! Intake end to end over gRPC, on SQLite and on PostgreSQL, and a consumer of its feed
//! built on the kit.

mod common;
mod tally;

mod anonymous;
mod auth;
mod batches;
mod consumer;
mod feed;
mod history;
mod parked;
mod protocol;
mod providers;
mod reads;
mod reports;
mod server;
mod status_contract;
mod store_contract;
mod submit;
