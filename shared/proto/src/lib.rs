//! Generated protobuf and gRPC bindings for every custos API, and the encoded descriptor
//! set that servers register for reflection.

#![allow(clippy::all, clippy::pedantic, unused_qualifications, missing_docs)]

/// Encoded `FileDescriptorSet` of every custos proto (with imports), for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/custos_descriptor.bin"));

/// The generated modules, nested as their protobuf packages are (so that references
/// between packages, such as `google.type.Money` from `custos.classification.v1`,
/// resolve); re-exported below under the short paths the services use.
pub mod custos {
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

    /// The public business-continuity contract.
    pub mod continuity {
        pub mod v1 {
            tonic::include_proto!("custos.continuity.v1");
        }
    }

    pub mod classification {
        pub mod v1 {
            tonic::include_proto!("custos.classification.v1");

            /// Fully qualified protobuf name of a payload message, used as the event type.
            pub const PACKAGE: &str = "custos.classification.v1";
        }
    }

    pub mod escalation {
        pub mod v1 {
            tonic::include_proto!("custos.escalation.v1");
        }
    }

    pub mod custody {
        pub mod v1 {
            tonic::include_proto!("custos.custody.v1");

            /// Fully qualified protobuf name of a payload message, used as the event type.
            pub const PACKAGE: &str = "custos.custody.v1";
        }
    }
}

/// Google's API types that custos messages use (`google.type.Money`).
pub mod google {
    pub mod r#type {
        tonic::include_proto!("google.r#type");
    }
}

pub use custos::{classification, common, continuity, custody, escalation, intake};

pub mod codec;

pub use prost_types;

/// A generated gRPC server whose message size limits the kit sets, whatever the service.
pub trait MessageLimits {
    /// Sets the largest message decoded and encoded.
    fn with_message_limits(self, max: usize) -> Self;
}

macro_rules! message_limits {
    ($($($seg:ident)::+),+ $(,)?) => {
        $(impl<T> MessageLimits for $($seg)::+<T> {
            fn with_message_limits(self, max: usize) -> Self {
                self.max_decoding_message_size(max).max_encoding_message_size(max)
            }
        })+
    };
}

message_limits!(
    common::v1::event_feed_service_server::EventFeedServiceServer,
    common::v1::feed_admin_service_server::FeedAdminServiceServer,
    intake::v1::intake_service_server::IntakeServiceServer,
    classification::v1::classification_service_server::ClassificationServiceServer,
    classification::v1::incident_service_server::IncidentServiceServer,
    continuity::v1::continuity_service_server::ContinuityServiceServer,
    escalation::v1::directory_service_server::DirectoryServiceServer,
    escalation::v1::escalation_service_server::EscalationServiceServer,
    custody::v1::custody_service_server::CustodyServiceServer,
);
