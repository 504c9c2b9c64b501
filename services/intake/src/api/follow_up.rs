//! Follow-ups: AddFollowUp (with an account), and the anonymous reporter's receipt calls
//! CheckReceipt and AddReceiptInformation. Both adds are idempotent with a key.

use custos_kit::{
    auth,
    error::Violations,
    idempotency::{self, Claim, Key},
    outbox::NewEvent,
    storage::DbTime,
};
use custos_proto::intake::v1 as pb;
use prost::Message;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{AMEND, IntakeApi, convert};
use crate::{
    error::IntakeError,
    receipt,
    report::{self, FollowUpSource},
    store::{self, FollowUpRow, ReportRow},
};

/// How a follow-up is added: by whom, under which idempotency key.
struct Adding<'a> {
    report: &'a ReportRow,
    text: String,
    source: FollowUpSource,
    added_by: Option<String>,
    /// `(scope, key)` when the caller sent a key.
    key: Option<(String, &'a str)>,
    method: &'static str,
}

impl IntakeApi {
    /// Writes a follow-up and its event, or replays the response of an earlier call with
    /// the same key. One added with a receipt is anonymous: a random id, its time cut to
    /// the minute, and an event without trace context.
    async fn add_follow_up(&self, adding: Adding<'_>) -> Result<pb::FollowUp, IntakeError> {
        let anonymous = adding.source == FollowUpSource::Receipt;
        let now = time::OffsetDateTime::now_utc();
        let follow_up = FollowUpRow {
            id: if anonymous {
                Uuid::new_v4()
            } else {
                Uuid::now_v7()
            },
            added_at: if anonymous {
                DbTime::new(now).to_minute()
            } else {
                DbTime::new(now)
            },
            source: adding.source,
            added_by: adding.added_by,
            text: adding.text,
        };
        let payload = pb::FollowUpAdded {
            follow_up_id: follow_up.id.to_string(),
            source: follow_up.source.to_wire(),
        };
        let (id, reference) = (adding.report.id, adding.report.reference.clone());
        let event = if anonymous {
            NewEvent::anonymous(id, reference, now, &payload)
        } else {
            NewEvent::new(id, reference, now, &payload)
        };
        let mut tx = self.db().begin().await?;
        let pending = match &adding.key {
            Some((scope, key)) => {
                let key = Key::new(scope, adding.method, key);
                let fingerprint = idempotency::fingerprint(&(id, &follow_up.text));
                match idempotency::claim(&mut tx, &key, &fingerprint).await? {
                    Claim::Replay(bytes) => {
                        return pb::FollowUp::decode(bytes.as_slice())
                            .map_err(|e| IntakeError::Corrupt(e.to_string()));
                    }
                    Claim::New(pending) => Some(pending),
                }
            }
            None => None,
        };
        store::add_follow_up(&mut tx, id, &follow_up, &event).await?;
        let wire = convert::follow_up(&follow_up);
        if let Some(pending) = pending {
            idempotency::complete(&mut tx, pending, &wire).await?;
        }
        tx.commit().await?;
        Ok(wire)
    }

    /// Roles: helpdesk, security advisor; or the named reporter on their own report.
    #[tracing::instrument(skip_all, fields(report_id))]
    pub(super) async fn follow_up(
        &self,
        request: Request<pb::AddFollowUpRequest>,
    ) -> Result<Response<pb::AddFollowUpResponse>, Status> {
        let principal = auth::require_authenticated(&request)?.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = v.check("report_id", convert::parse_id(&req.report_id));
        let text = report::text(&mut v, "text", &req.text, 10_000, true);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, false);
        v.finish().map_err(IntakeError::from)?;
        let row = self
            .visible_report(&principal, id.expect("checked"))
            .await?;
        if !principal.has_any(AMEND)
            && row.submitted_by.as_deref() != Some(principal.subject.as_str())
        {
            // They may see the report (no secret that it exists), not add to it.
            return Err(custos_kit::error::status(
                tonic::Code::PermissionDenied,
                "adding to a report needs the role helpdesk or security_advisor, or to be \
                 its reporter",
                "ROLE_REQUIRED",
                crate::error::DOMAIN,
            ));
        }
        tracing::Span::current().record("report_id", tracing::field::display(row.id));
        let follow_up = self
            .add_follow_up(Adding {
                report: &row,
                text,
                source: FollowUpSource::Account,
                added_by: Some(principal.subject.clone()),
                key: (!req.idempotency_key.is_empty())
                    .then(|| (principal.subject.clone(), req.idempotency_key.as_str())),
                method: "AddFollowUp",
            })
            .await?;
        Ok(Response::new(pb::AddFollowUpResponse {
            follow_up: Some(follow_up),
        }))
    }

    async fn report_for_receipt(&self, receipt_text: &str) -> Result<ReportRow, IntakeError> {
        let conn = self.db().read().await?;
        store::report_by_receipt(conn, receipt::receipt_hash(receipt_text))
            .await?
            .ok_or(IntakeError::ReceiptNotFound)
    }

    /// No token needed: the receipt is the credential. Shows status and what the
    /// reporter added, never staff notes.
    #[tracing::instrument(skip_all)]
    pub(super) async fn receipt_status(
        &self,
        request: Request<pb::CheckReceiptRequest>,
    ) -> Result<Response<pb::CheckReceiptResponse>, Status> {
        let receipt_text = &request.get_ref().receipt;
        let mut v = Violations::new();
        check_receipt(&mut v, receipt_text);
        v.finish().map_err(IntakeError::from)?;
        let row = self.report_for_receipt(receipt_text).await?;
        let conn = self.db().read().await.map_err(IntakeError::from)?;
        let follow_ups = store::follow_ups(conn, row.id).await?;
        Ok(Response::new(pb::CheckReceiptResponse {
            reference: row.reference.clone(),
            status: row.status.to_wire(),
            submitted_at: convert::ts(row.submitted_at),
            follow_ups: follow_ups
                .iter()
                .filter(|f| f.source == FollowUpSource::Receipt)
                .map(convert::follow_up)
                .collect(),
        }))
    }

    /// No token needed; nothing about the caller is stored.
    #[tracing::instrument(skip_all)]
    pub(super) async fn receipt_follow_up(
        &self,
        request: Request<pb::AddReceiptInformationRequest>,
    ) -> Result<Response<pb::AddReceiptInformationResponse>, Status> {
        let req = request.into_inner();
        let mut v = Violations::new();
        let text = report::text(&mut v, "text", &req.text, 10_000, true);
        check_receipt(&mut v, &req.receipt);
        idempotency::check(&mut v, "idempotency_key", &req.idempotency_key, false);
        v.finish().map_err(IntakeError::from)?;
        let row = self.report_for_receipt(&req.receipt).await?;
        // The receipt stands for the anonymous caller: keys are scoped to it.
        let scope = data_encoding::HEXLOWER.encode(&receipt::receipt_hash(&req.receipt));
        let follow_up = self
            .add_follow_up(Adding {
                report: &row,
                text,
                source: FollowUpSource::Receipt,
                added_by: None,
                key: (!req.idempotency_key.is_empty())
                    .then_some((scope, req.idempotency_key.as_str())),
                method: "AddReceiptInformation",
            })
            .await?;
        Ok(Response::new(pb::AddReceiptInformationResponse {
            follow_up: Some(follow_up),
        }))
    }
}

fn check_receipt(v: &mut Violations, receipt_text: &str) {
    if !receipt::looks_like_receipt(receipt_text) {
        v.add(
            "receipt",
            "is not a receipt: 32 letters and digits, as given when you reported",
        );
    }
}
