//! Classification end to end over gRPC.

mod common;

mod matrix;
