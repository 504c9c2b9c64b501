//! Classification end to end over gRPC.

mod common;

mod matrix;
mod store_contract;
mod triage;
