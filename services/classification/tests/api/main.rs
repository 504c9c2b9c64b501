//! Classification end to end over gRPC.

mod common;

mod assess;
mod assessment_store;
mod matrix;
mod related;
mod store_contract;
mod triage;
