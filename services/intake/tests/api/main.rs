//! Intake end to end over gRPC, on SQLite and on PostgreSQL.

mod common;

mod anonymous;
mod auth;
mod feed;
mod providers;
mod reports;
mod server;
mod store_contract;
mod submit;
