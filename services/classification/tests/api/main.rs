//! Classification end to end over gRPC.

mod common;

mod assess;
mod assess_errors;
mod assessment_store;
mod continuity;
mod incident_access;
mod incident_changes;
mod incident_costs;
mod incident_errors;
mod incident_review;
mod incident_store;
mod incidents;
mod matrix;
mod related;
mod report_count;
mod store_contract;
mod triage;
