//! Escalation end to end over gRPC.

mod common;

mod directory;
mod engine;
mod policies;
