//! The gRPC surface of intake. Each handler declares the roles it needs at its top,
//! parses the request into domain values, calls the store and converts back.

mod amend;
pub mod convert;
mod follow_up;
mod providers;
mod read;
mod submit;

use std::sync::Arc;

use custos_kit::auth::Role;
use custos_proto::intake::v1::{self as pb, intake_service_server::IntakeService};
use tonic::{Request, Response, Status};

use custos_taxonomy::Taxonomy;

use crate::{
    config::IntakeSettings, match_key::MatchKeys, receipt::Receipts, report::Kind, store::Store,
};

/// Roles that see every report.
pub const READ_ALL: &[Role] = &[Role::Helpdesk, Role::SecurityAdvisor, Role::Service];
/// Roles that amend reports and add follow-ups to any report.
pub const AMEND: &[Role] = &[Role::Helpdesk, Role::SecurityAdvisor];
/// Roles that track weaknesses reported to service providers.
pub const PROVIDERS: &[Role] = &[Role::Helpdesk, Role::SecurityAdvisor, Role::ItSupport];
/// Roles that may follow intake's event feed.
pub const FEED: &[Role] = &[Role::Service, Role::Admin];

/// Calls that may come without a bearer token.
pub const ANONYMOUS_PATHS: &[&str] = &[
    "/custos.intake.v1.IntakeService/SubmitReport",
    "/custos.intake.v1.IntakeService/CheckReceipt",
    "/custos.intake.v1.IntakeService/AddReceiptInformation",
    "/custos.intake.v1.IntakeService/ListCategories",
];

#[derive(Debug, Clone)]
pub struct IntakeApi {
    store: Store,
    taxonomy: Arc<Taxonomy>,
    receipts: Receipts,
    match_keys: MatchKeys,
    settings: Arc<IntakeSettings>,
}

impl IntakeApi {
    pub fn new(
        store: Store,
        taxonomy: Taxonomy,
        receipts: Receipts,
        match_keys: MatchKeys,
        settings: IntakeSettings,
    ) -> Self {
        Self {
            store,
            taxonomy: Arc::new(taxonomy),
            receipts,
            match_keys,
            settings: Arc::new(settings),
        }
    }

    fn db(&self) -> &custos_kit::storage::Db {
        self.store.db()
    }
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn submit_report(
        &self,
        r: Request<pb::SubmitReportRequest>,
    ) -> Reply<pb::SubmitReportResponse> {
        self.submit(r).await
    }

    async fn get_report(&self, r: Request<pb::GetReportRequest>) -> Reply<pb::GetReportResponse> {
        self.get(r).await
    }

    async fn list_reports(
        &self,
        r: Request<pb::ListReportsRequest>,
    ) -> Reply<pb::ListReportsResponse> {
        self.list(r).await
    }

    async fn amend_report(
        &self,
        r: Request<pb::AmendReportRequest>,
    ) -> Reply<pb::AmendReportResponse> {
        self.amend(r).await
    }

    async fn add_follow_up(
        &self,
        r: Request<pb::AddFollowUpRequest>,
    ) -> Reply<pb::AddFollowUpResponse> {
        self.follow_up(r).await
    }

    async fn check_receipt(
        &self,
        r: Request<pb::CheckReceiptRequest>,
    ) -> Reply<pb::CheckReceiptResponse> {
        self.receipt_status(r).await
    }

    async fn add_receipt_information(
        &self,
        r: Request<pb::AddReceiptInformationRequest>,
    ) -> Reply<pb::AddReceiptInformationResponse> {
        self.receipt_follow_up(r).await
    }

    async fn list_categories(
        &self,
        _: Request<pb::ListCategoriesRequest>,
    ) -> Reply<pb::ListCategoriesResponse> {
        let categories = self
            .taxonomy
            .categories()
            .iter()
            .map(|c| pb::Category {
                code: c.code.clone(),
                label: c.label.clone(),
                group: c.group.clone(),
                kinds: c.kinds.iter().map(|&k| Kind::from(k).to_wire()).collect(),
                suggests_malware: c.suggests_malware,
            })
            .collect();
        Ok(Response::new(pb::ListCategoriesResponse { categories }))
    }

    async fn record_provider_report(
        &self,
        r: Request<pb::RecordProviderReportRequest>,
    ) -> Reply<pb::RecordProviderReportResponse> {
        self.provider_report(r).await
    }

    async fn record_provider_response(
        &self,
        r: Request<pb::RecordProviderResponseRequest>,
    ) -> Reply<pb::RecordProviderResponseResponse> {
        self.provider_response(r).await
    }

    async fn record_fix_verdict(
        &self,
        r: Request<pb::RecordFixVerdictRequest>,
    ) -> Reply<pb::RecordFixVerdictResponse> {
        self.fix_verdict(r).await
    }

    async fn list_overdue_provider_reports(
        &self,
        r: Request<pb::ListOverdueProviderReportsRequest>,
    ) -> Reply<pb::ListOverdueProviderReportsResponse> {
        self.overdue(r).await
    }
}
