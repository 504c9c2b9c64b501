//! Classification end to end over gRPC.

mod common;

mod assess;
mod assess_errors;
mod assessment_store;
mod matrix;
mod related;
mod store_contract;
mod triage;
