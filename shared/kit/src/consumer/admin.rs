//! `FeedAdminService`: an operator's view of a service's feed consumers, their parked
//! events, replay, and reset (role `admin`). Served by the kit for every service that
//! consumes a feed.

use std::sync::Arc;

use custos_proto::common::v1::{
    self as pb,
    feed_admin_service_server::{FeedAdminService, FeedAdminServiceServer},
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{Consumer, ConsumerState, parking};
use crate::{
    auth::{self, Role},
    error::{Code, FieldViolation, ServiceError, Violations, into_status},
    storage::{DbTime, StorageError},
    time_fmt::to_timestamp,
};

const ADMIN: &[Role] = &[Role::Admin];

/// The admin service over a service's consumers.
#[derive(Clone)]
pub struct FeedAdmin {
    consumers: Arc<[Consumer]>,
    domain: &'static str,
}

impl std::fmt::Debug for FeedAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedAdmin").finish_non_exhaustive()
    }
}

impl FeedAdmin {
    pub fn new(consumers: Vec<Consumer>, service: &'static str) -> Self {
        Self {
            consumers: consumers.into(),
            domain: crate::error::domain(service),
        }
    }

    pub fn into_server(self) -> FeedAdminServiceServer<Self> {
        FeedAdminServiceServer::new(self)
    }

    fn find(&self, name: &str) -> Result<&Consumer, Status> {
        self.consumers
            .iter()
            .find(|c| c.name() == name)
            .ok_or_else(|| self.status(AdminError::NoSuchConsumer))
    }

    fn status(&self, error: AdminError) -> Status {
        into_status(error, self.domain)
    }

    async fn describe(&self, consumer: &Consumer) -> Result<pb::FeedConsumer, Status> {
        let (state, detail) = match consumer.state() {
            ConsumerState::Connecting(why) => (pb::ConsumerState::Connecting, why),
            ConsumerState::Running => (pb::ConsumerState::Running, String::new()),
            ConsumerState::Standby => (pb::ConsumerState::Standby, String::new()),
            ConsumerState::Stopped(why) => (pb::ConsumerState::Stopped, why),
        };
        let storage = |e: StorageError| self.status(e.into());
        let conn = consumer.inner.db.read().await.map_err(storage)?;
        let parked = parking::count(conn, consumer.name())
            .await
            .map_err(storage)?;
        let lag = std::time::Duration::from_secs_f64(consumer.lag_secs());
        Ok(pb::FeedConsumer {
            name: consumer.name().to_owned(),
            state: state as i32,
            detail,
            cursor: consumer.cursor().await.map_err(storage)?,
            parked_events: parked as i32,
            lag: prost_types::Duration::try_from(lag).ok(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error("this service has no feed consumer of that name")]
    NoSuchConsumer,
    #[error("no such parked event")]
    NotParked,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl ServiceError for AdminError {
    fn code(&self) -> Code {
        match self {
            AdminError::Invalid(_) => Code::InvalidArgument,
            AdminError::NoSuchConsumer | AdminError::NotParked => Code::NotFound,
            AdminError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            AdminError::Invalid(_) => "INVALID_ARGUMENT",
            AdminError::NoSuchConsumer => "CONSUMER_NOT_FOUND",
            AdminError::NotParked => "PARKED_EVENT_NOT_FOUND",
            AdminError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            AdminError::Invalid(v) => v,
            _ => &[],
        }
    }
}

#[tonic::async_trait]
impl FeedAdminService for FeedAdmin {
    async fn list_consumers(
        &self,
        request: Request<pb::ListConsumersRequest>,
    ) -> Result<Response<pb::ListConsumersResponse>, Status> {
        auth::require_any(&request, ADMIN)?;
        let mut consumers = Vec::new();
        for consumer in self.consumers.iter() {
            consumers.push(self.describe(consumer).await?);
        }
        Ok(Response::new(pb::ListConsumersResponse { consumers }))
    }

    async fn list_parked_events(
        &self,
        request: Request<pb::ListParkedEventsRequest>,
    ) -> Result<Response<pb::ListParkedEventsResponse>, Status> {
        auth::require_any(&request, ADMIN)?;
        let req = request.into_inner();
        if !req.consumer.is_empty() {
            self.find(&req.consumer)?;
        }
        let mut v = Violations::new();
        let limit = crate::page::size(&mut v, "page_size", req.page_size);
        let Some(first) = self.consumers.first() else {
            return Err(self.status(AdminError::NoSuchConsumer));
        };
        let tokens = first.inner.db.page_tokens();
        let scope = format!("ListParkedEvents {}", req.consumer);
        let after = v
            .check(
                "page_token",
                tokens.open::<(DbTime, Uuid)>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish()
            .map_err(|v| self.status(AdminError::Invalid(v)))?;
        let consumer = (!req.consumer.is_empty()).then_some(req.consumer.as_str());
        let conn = first
            .inner
            .db
            .read()
            .await
            .map_err(|e| self.status(e.into()))?;
        let mut rows = parking::list(conn, consumer, after, limit + 1)
            .await
            .map_err(|e| self.status(e.into()))?;
        let next_page_token = crate::page::cut(&mut rows, limit, |r| {
            tokens.seal(scope.as_bytes(), &(r.parked_at, r.event_id))
        });
        let parked_events = rows
            .into_iter()
            .map(|r| pb::ParkedEvent {
                consumer: r.consumer,
                event_id: r.event_id.to_string(),
                event_type: r.event_type,
                aggregate_reference: r.aggregate_reference,
                cursor: r.feed_cursor,
                error: r.error,
                attempts: r.attempts,
                parked_at: Some(to_timestamp(r.parked_at.get())),
            })
            .collect();
        Ok(Response::new(pb::ListParkedEventsResponse {
            parked_events,
            next_page_token,
        }))
    }

    async fn replay_parked_event(
        &self,
        request: Request<pb::ReplayParkedEventRequest>,
    ) -> Result<Response<pb::ReplayParkedEventResponse>, Status> {
        let principal = auth::require_any(&request, ADMIN)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        let event_id = v.check(
            "event_id",
            Uuid::try_parse(&req.event_id).map_err(|_| "must be a UUID"),
        );
        v.finish()
            .map_err(|v| self.status(AdminError::Invalid(v)))?;
        let consumer = self.find(&req.consumer)?;
        tracing::info!(consumer = %req.consumer, event_id = %req.event_id, by = %principal, "replaying a parked event");
        let outcome = consumer
            .replay(event_id.expect("checked"))
            .await
            .map_err(|e| self.status(e.into()))?;
        Ok(Response::new(match outcome {
            parking::Replayed::Applied => pb::ReplayParkedEventResponse {
                applied: true,
                error: String::new(),
            },
            parking::Replayed::Failed(error) => pb::ReplayParkedEventResponse {
                applied: false,
                error,
            },
            parking::Replayed::NotParked => return Err(self.status(AdminError::NotParked)),
        }))
    }

    async fn reset_consumer(
        &self,
        request: Request<pb::ResetConsumerRequest>,
    ) -> Result<Response<pb::ResetConsumerResponse>, Status> {
        let principal = auth::require_any(&request, ADMIN)?.subject.clone();
        let req = request.into_inner();
        let mut v = Violations::new();
        v.check("cursor", Consumer::valid_cursor(&req.cursor));
        v.finish()
            .map_err(|v| self.status(AdminError::Invalid(v)))?;
        let consumer = self.find(&req.consumer)?;
        tracing::warn!(consumer = %req.consumer, by = %principal, "resetting a feed consumer");
        consumer
            .reset(&req.cursor)
            .await
            .map_err(|e| self.status(e.into()))?;
        Ok(Response::new(pb::ResetConsumerResponse {
            consumer: Some(self.describe(consumer).await?),
        }))
    }
}
