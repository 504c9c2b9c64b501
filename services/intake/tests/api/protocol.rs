//! The API as clients live with it: every error carries an ErrorInfo with a stable
//! reason; oversized and undecodable requests get the codes gRPC gives them; page tokens
//! are opaque and bound to their filter; and the creates besides SubmitReport are
//! idempotent with a key.

use bytes::{Buf, BufMut};
use custos_kit::{
    auth::Role,
    error::{status_reason, status_violations},
};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, on_both_backends};
use tonic::{
    Code,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::common::*;

fn reason(status: &tonic::Status) -> String {
    let (reason, domain) = status_reason(status).expect("an ErrorInfo");
    assert_eq!(domain, "intake.custos", "{status:?}");
    reason
}

async fn errors_carry_a_reason(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let get = |id: String| pb::GetReportRequest {
        lookup: Some(pb::get_report_request::Lookup::ReportId(id)),
    };
    let missing = intake
        .client("desk", &[Role::Helpdesk])
        .get_report(get(uuid::Uuid::now_v7().to_string()))
        .await
        .unwrap_err();
    assert_eq!(
        (missing.code(), reason(&missing).as_str()),
        (Code::NotFound, "REPORT_NOT_FOUND")
    );
    let no_token = intake
        .anonymous()
        .list_reports(pb::ListReportsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(reason(&no_token), "TOKEN_MISSING");
    let bad_token = custos_proto::intake::v1::intake_service_client::IntakeServiceClient::new(
        custos_testing::with_token(intake.addr(), "not.a.token"),
    )
    .list_reports(pb::ListReportsRequest::default())
    .await
    .unwrap_err();
    assert_eq!(reason(&bad_token), "TOKEN_INVALID");
    let wrong_role = intake
        .client("alex", &[Role::Reporter])
        .list_overdue_provider_reports(pb::ListOverdueProviderReportsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        (wrong_role.code(), reason(&wrong_role).as_str()),
        (Code::PermissionDenied, "ROLE_REQUIRED")
    );
    let invalid = intake
        .client("alex", &[Role::Reporter])
        .submit_report(pb::SubmitReportRequest::default())
        .await
        .unwrap_err();
    assert_eq!(reason(&invalid), "INVALID_ARGUMENT");
    let report = submit_event(&intake, "alex").await;
    let stale = intake
        .client("desk", &[Role::Helpdesk])
        .amend_report(pb::AmendReportRequest {
            report_id: report.id,
            details: Some(pb::ReportDetails {
                symptoms: "x".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["details.symptoms".into()],
            }),
            reason: "why not".into(),
            expected_revision: 7,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (stale.code(), reason(&stale).as_str()),
        (Code::Aborted, "REVISION_MISMATCH")
    );
}

/// Sends raw bytes as a request message.
#[derive(Debug, Default, Clone)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

async fn raw_call(intake: &TestIntake, method: &str, body: Vec<u8>) -> tonic::Status {
    let channel = custos_testing::authed(intake.addr(), "alex", &[Role::Reporter]);
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = format!("/custos.intake.v1.IntakeService/{method}")
        .parse()
        .unwrap();
    grpc.unary::<Vec<u8>, Vec<u8>, Raw>(tonic::Request::new(body), path, Raw)
        .await
        .expect_err("refused")
}

/// Bytes that are not the message are the caller's mistake (INVALID_ARGUMENT), and a
/// message over the limit is RESOURCE_EXHAUSTED, refused before it is read whole.
async fn oversized_and_undecodable_requests(backend: Backend) {
    let intake = TestIntake::start_with(backend, |c| c.server.max_message_bytes = 64 * 1024).await;
    let garbage = raw_call(&intake, "SubmitReport", vec![0xff; 16]).await;
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    assert_eq!(reason(&garbage), "MALFORMED_MESSAGE");
    let huge = raw_call(&intake, "SubmitReport", vec![0x0a; 100 * 1024]).await;
    assert_eq!(huge.code(), Code::ResourceExhausted, "{huge:?}");
    assert_eq!(reason(&huge), "MESSAGE_TOO_LARGE");
    assert!(huge.message().contains("server.max_message_bytes"));
    // The service is unharmed.
    submit_event(&intake, "alex").await;
}

/// A page token cannot be read, and works only with the filter it was issued for.
async fn page_tokens_are_opaque_and_bound_to_their_filter(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(submit_event(&intake, "alex").await.id);
    }
    let mut desk = intake.client("desk", &[Role::Helpdesk]);
    let events = pb::ReportFilter {
        kind: pb::ReportKind::Event as i32,
        ..Default::default()
    };
    let page = desk
        .list_reports(pb::ListReportsRequest {
            filter: Some(events.clone()),
            page_size: 1,
            page_token: String::new(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let token = page.next_page_token;
    for id in &ids {
        assert!(!token.contains(id) && !token.contains(&id.replace('-', "")));
    }
    let next = desk
        .list_reports(pb::ListReportsRequest {
            filter: Some(events),
            page_size: 1,
            page_token: token.clone(),
            view: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.reports[0].id, ids[1], "the second newest");
    let err = desk
        .list_reports(pb::ListReportsRequest {
            filter: Some(pb::ReportFilter {
                medium: pb::ReportMedium::Paper as i32,
                ..Default::default()
            }),
            page_size: 1,
            page_token: token.clone(),
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(status_violations(&err)[0].field, "page_token");
    // Another caller (who sees only their own reports) cannot use it either.
    let err = intake
        .client("desk", &[Role::Reporter])
        .list_reports(pb::ListReportsRequest {
            filter: Some(pb::ReportFilter {
                kind: pb::ReportKind::Event as i32,
                ..Default::default()
            }),
            page_size: 1,
            page_token: token,
            view: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status_violations(&err)[0].field, "page_token");
}

/// AddFollowUp, AddReceiptInformation, RecordProviderReport and RecordProviderResponse
/// take a key: a retry returns the first response and adds nothing; the key with
/// another request is IDEMPOTENCY_KEY_REUSED.
async fn other_creates_are_idempotent(backend: Backend) {
    let intake = TestIntake::start(backend).await;
    let report = submit_event(&intake, "alex").await;
    let mut alex = intake.client("alex", &[Role::Reporter]);
    let follow_up = |text: &str, key: &str| pb::AddFollowUpRequest {
        report_id: report.id.clone(),
        text: text.into(),
        idempotency_key: key.into(),
    };
    let k = key();
    let first = alex
        .add_follow_up(follow_up("grey Dell", &k))
        .await
        .unwrap();
    let again = alex
        .add_follow_up(follow_up("grey Dell", &k))
        .await
        .unwrap();
    assert_eq!(first.into_inner(), again.into_inner());
    let reused = alex
        .add_follow_up(follow_up("black Dell", &k))
        .await
        .unwrap_err();
    assert_eq!(
        (reused.code(), reason(&reused).as_str()),
        (Code::InvalidArgument, "IDEMPOTENCY_KEY_REUSED")
    );
    // Keys are scoped to the caller: another person's same key is theirs.
    intake
        .client("desk", &[Role::Helpdesk])
        .add_follow_up(follow_up("grey Dell", &k))
        .await
        .unwrap();

    let mut request = anonymous_event();
    request.idempotency_key = key();
    let receipt = intake
        .anonymous()
        .submit_report(request)
        .await
        .unwrap()
        .into_inner()
        .receipt;
    let add = |text: &str, key: &str| pb::AddReceiptInformationRequest {
        receipt: receipt.clone(),
        text: text.into(),
        idempotency_key: key.into(),
    };
    let k = key();
    let a = intake
        .anonymous()
        .add_receipt_information(add("again", &k))
        .await
        .unwrap();
    let b = intake
        .anonymous()
        .add_receipt_information(add("again", &k))
        .await
        .unwrap();
    assert_eq!(a.into_inner(), b.into_inner());
    let status = intake
        .anonymous()
        .check_receipt(pb::CheckReceiptRequest {
            receipt: receipt.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.follow_ups.len(), 1, "added once");

    let weakness = intake
        .client("alex", &[Role::Reporter])
        .submit_report(named(weakness_details(), pb::ReportKind::Weakness))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    let mut it = intake.client("it", &[Role::ItSupport]);
    let record = pb::RecordProviderReportRequest {
        report_id: weakness.id.clone(),
        provider: "Acme".into(),
        provider_reference: "A-1".into(),
        reported_at: Some(hours_ago(2)),
        idempotency_key: key(),
    };
    let a = it
        .record_provider_report(record.clone())
        .await
        .unwrap()
        .into_inner();
    let b = it
        .record_provider_report(record.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let provider_report = a.provider_report.unwrap();
    let respond = pb::RecordProviderResponseRequest {
        provider_report_id: provider_report.id.clone(),
        responded_at: Some(hours_ago(1)),
        summary: "Fix scheduled".into(),
        idempotency_key: key(),
    };
    let a = it
        .record_provider_response(respond.clone())
        .await
        .unwrap()
        .into_inner();
    let b = it
        .record_provider_response(respond)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a, b);
    let full = intake
        .client("desk", &[Role::Helpdesk])
        .get_report(pb::GetReportRequest {
            lookup: Some(pb::get_report_request::Lookup::ReportId(weakness.id)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.provider_reports.len(), 1, "recorded once");
    assert_eq!(
        full.provider_reports[0].responses.len(),
        1,
        "responded once"
    );
}

on_both_backends!(
    errors_carry_a_reason,
    oversized_and_undecodable_requests,
    page_tokens_are_opaque_and_bound_to_their_filter,
    other_creates_are_idempotent,
);
