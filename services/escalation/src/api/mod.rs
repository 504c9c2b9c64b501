//! The gRPC surface of escalation. Each handler declares the roles it needs at its top,
//! parses the request into domain values, calls the domain or the store and converts
//! back.

mod contacts;
mod escalations;
mod policies;

pub use escalations::{EscalationApi, SEE_ALL};

pub(crate) use contacts::is_address;

use custos_kit::{auth::Role, error::Violations, storage::Db};
use custos_proto::escalation::v1::{self as pb, directory_service_server};
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// Roles that change the directory and the policies: the policy owner keeps the RACI
/// roles and the process (policy 8, 9).
pub const DIRECTORY_WRITE: &[Role] = &[Role::PolicyOwner, Role::Admin];

/// Roles that read the directory and the policies.
pub const DIRECTORY_READ: &[Role] = &[
    Role::PolicyOwner,
    Role::Admin,
    Role::SecurityAdvisor,
    Role::SeniorManagement,
    Role::Service,
];

/// A UUID field, or a violation naming it.
pub(crate) fn parse_id(v: &mut Violations, field: &str, raw: &str) -> Option<Uuid> {
    if raw.is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(
        field,
        Uuid::try_parse(raw).map_err(|_| "is not an id (a UUID)"),
    )
}

/// DirectoryService: contacts, lists and policies.
#[derive(Debug, Clone)]
pub struct DirectoryApi {
    db: Db,
}

impl DirectoryApi {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl directory_service_server::DirectoryService for DirectoryApi {
    async fn create_contact(
        &self,
        r: Request<pb::CreateContactRequest>,
    ) -> Reply<pb::CreateContactResponse> {
        DirectoryApi::create_contact(self, r).await
    }

    async fn get_contact(
        &self,
        r: Request<pb::GetContactRequest>,
    ) -> Reply<pb::GetContactResponse> {
        DirectoryApi::get_contact(self, r).await
    }

    async fn list_contacts(
        &self,
        r: Request<pb::ListContactsRequest>,
    ) -> Reply<pb::ListContactsResponse> {
        DirectoryApi::list_contacts(self, r).await
    }

    async fn update_contact(
        &self,
        r: Request<pb::UpdateContactRequest>,
    ) -> Reply<pb::UpdateContactResponse> {
        DirectoryApi::update_contact(self, r).await
    }

    async fn deactivate_contact(
        &self,
        r: Request<pb::DeactivateContactRequest>,
    ) -> Reply<pb::DeactivateContactResponse> {
        DirectoryApi::deactivate_contact(self, r).await
    }

    async fn set_contact_list(
        &self,
        r: Request<pb::SetContactListRequest>,
    ) -> Reply<pb::SetContactListResponse> {
        DirectoryApi::set_contact_list(self, r).await
    }

    async fn list_contact_lists(
        &self,
        r: Request<pb::ListContactListsRequest>,
    ) -> Reply<pb::ListContactListsResponse> {
        DirectoryApi::list_contact_lists(self, r).await
    }

    async fn set_escalation_policy(
        &self,
        r: Request<pb::SetEscalationPolicyRequest>,
    ) -> Reply<pb::SetEscalationPolicyResponse> {
        DirectoryApi::set_escalation_policy(self, r).await
    }

    async fn list_escalation_policies(
        &self,
        r: Request<pb::ListEscalationPoliciesRequest>,
    ) -> Reply<pb::ListEscalationPoliciesResponse> {
        DirectoryApi::list_escalation_policies(self, r).await
    }
}
