//! Generated protobuf and gRPC bindings for every custos API, and the encoded descriptor
//! set that servers register for reflection.

#![allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]

/// Encoded `FileDescriptorSet` of every custos proto (with imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/custos_descriptor.bin"));

pub mod common {
    pub mod v1 {
        tonic::include_proto!("custos.common.v1");
    }
}

pub mod intake {
    pub mod v1 {
        tonic::include_proto!("custos.intake.v1");

        /// Fully qualified protobuf name of a payload message, used as the event type.
        pub const PACKAGE: &str = "custos.intake.v1";
    }
}

pub use prost_types;
