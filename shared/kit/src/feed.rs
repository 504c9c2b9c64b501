//! The `EventFeedService` every producing service serves: replay after a cursor, then
//! follow new events as they commit (woken by the outbox signal, not by polling), with
//! heartbeats while idle. A cursor is checked before anything is sent: one that belongs
//! to another history of the feed is refused, never silently resumed (see
//! `outbox::cursor`). The same code serves in-house consumers and outside subscribers.

use std::{
    pin::Pin,
    time::{Duration, Instant},
};

use custos_proto::common::v1::{
    Event, Heartbeat, SubscribeRequest, SubscribeResponse,
    event_feed_service_server::{EventFeedService, EventFeedServiceServer},
    subscribe_response::Item,
};
use opentelemetry::{KeyValue, metrics::Gauge};
use prost_types::Any;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    auth::{self, Role},
    error::{Code, ServiceError, Violations},
    outbox::{self, Cursor, StoredEvent},
    storage::{Backend, Db, StorageError},
    time_fmt::to_timestamp,
};

/// Events read per query.
const BATCH: i64 = 256;
/// First wait before re-reading when an event is held back behind an open transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);

/// How a feed behaves, from the `[feed]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct FeedSettings {
    /// Heartbeat interval on an idle stream.
    pub heartbeat: Duration,
    /// How long events may be held back behind an open transaction before a WARN.
    pub held_back_warning: Duration,
}

/// Serves one service's outbox as a feed.
#[derive(Debug, Clone)]
pub struct Feed {
    db: Db,
    source: &'static str,
    domain: &'static str,
    settings: FeedSettings,
    roles: &'static [Role],
    /// Cancelled when the server's grace period ends: streams end then.
    stopping: CancellationToken,
    held_back_age: Gauge<f64>,
}

impl Feed {
    /// `source` names the producing service; `roles` may subscribe.
    pub fn new(
        db: Db,
        source: &'static str,
        settings: FeedSettings,
        roles: &'static [Role],
        stopping: CancellationToken,
    ) -> Self {
        let held_back_age = opentelemetry::global::meter("custos")
            .f64_gauge("custos.feed.held_back.age")
            .with_unit("s")
            .with_description(
                "How long the feed's next event has waited for an older transaction to end",
            )
            .build();
        Self {
            db,
            source,
            domain: crate::error::domain(source),
            settings,
            roles,
            stopping,
            held_back_age,
        }
    }

    pub fn into_server(self) -> EventFeedServiceServer<Self> {
        EventFeedServiceServer::new(self)
    }

    fn to_event(&self, stored: StoredEvent) -> Event {
        Event {
            cursor: stored.cursor.to_string(),
            event_id: stored.cursor.event_id.to_string(),
            event_type: stored.event_type.clone(),
            occurred_at: Some(to_timestamp(stored.occurred_at)),
            source: self.source.to_owned(),
            aggregate_id: stored.aggregate_id,
            aggregate_reference: stored.aggregate_reference,
            trace_context: stored.trace_context,
            payload: Some(Any {
                type_url: format!("type.googleapis.com/{}", stored.event_type),
                value: stored.payload,
            }),
        }
    }

    async fn read(&self, cursor: Cursor) -> Result<outbox::Batch, StorageError> {
        let conn = self.db.read().await?;
        outbox::read_after(conn, cursor, BATCH).await
    }

    /// Streams into `tx` until the subscriber goes away, the server stops or the
    /// database fails (the subscriber then resumes from its last cursor).
    async fn pump(self, mut cursor: Cursor, tx: mpsc::Sender<Result<SubscribeResponse, Status>>) {
        let mut changes = self.db.outbox_changes();
        let mut held_back_wait = HELD_BACK_RETRY;
        let mut held_since: Option<Instant> = None;
        let mut warned = false;
        let feed = [KeyValue::new("feed", self.source)];
        loop {
            // Mark the signal seen before reading, so a commit after the read wakes us.
            changes.borrow_and_update();
            let batch = match self.read(cursor).await {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = tx.send(Err(self.status(FeedError::Storage(error)))).await;
                    return;
                }
            };
            for stored in batch.events {
                cursor = stored.cursor;
                let item = Item::Event(self.to_event(stored));
                if tx
                    .send(Ok(SubscribeResponse { item: Some(item) }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if batch.held_back {
                let since = *held_since.get_or_insert_with(Instant::now);
                self.held_back_age
                    .record(since.elapsed().as_secs_f64(), &feed);
                if !warned && since.elapsed() >= self.settings.held_back_warning {
                    warned = true;
                    self.warn_held_back(since.elapsed()).await;
                }
            } else if held_since.take().is_some() {
                warned = false;
                self.held_back_age.record(0.0, &feed);
            }
            if batch.full {
                continue;
            }
            let wait = if batch.held_back {
                held_back_wait = (held_back_wait * 2).min(Duration::from_secs(1));
                held_back_wait / 2
            } else {
                held_back_wait = HELD_BACK_RETRY;
                self.settings.heartbeat
            };
            tokio::select! {
                _ = self.stopping.cancelled() => return,
                _ = tx.closed() => return,
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {
                    if !batch.held_back {
                        let beat = Item::Heartbeat(Heartbeat {
                            sent_at: Some(to_timestamp(time::OffsetDateTime::now_utc())),
                            cursor: cursor.to_string(),
                        });
                        if tx.send(Ok(SubscribeResponse { item: Some(beat) })).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Says why events are held back: the oldest transaction still open in the cluster.
    async fn warn_held_back(&self, waited: Duration) {
        const OLDEST: &str = "SELECT pid, coalesce(datname, ''), coalesce(usename, ''), \
             coalesce(application_name, ''), coalesce(state, ''), \
             coalesce(EXTRACT(EPOCH FROM now() - xact_start), 0)::float8 \
             FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
             ORDER BY age(backend_xid) DESC LIMIT 1";
        let oldest: Option<(i32, String, String, String, String, f64)> = match self.db.read().await
        {
            Ok(mut conn) if self.db.backend() == Backend::Postgres => {
                crate::with_conn!(&mut conn, c => sqlx::query_as(OLDEST).fetch_optional(&mut *c).await.ok().flatten())
            }
            _ => None,
        };
        match oldest {
            Some((pid, database, user, application, state, open_secs)) => tracing::warn!(
                feed = self.source,
                waited_secs = waited.as_secs(),
                blocking_pid = pid,
                blocking_database = %database,
                blocking_user = %user,
                blocking_application = %application,
                blocking_state = %state,
                blocking_open_secs = open_secs as u64,
                "feed events are held back behind an open transaction elsewhere in the \
                 PostgreSQL cluster; they are delivered once it ends (end or fix the \
                 blocking transaction)"
            ),
            None => tracing::warn!(
                feed = self.source,
                waited_secs = waited.as_secs(),
                "feed events are held back behind an open transaction elsewhere in the \
                 PostgreSQL cluster; they are delivered once it ends (grant pg_monitor to \
                 this service's database role to have the transaction named here)"
            ),
        }
    }

    fn status(&self, error: FeedError) -> Status {
        crate::error::into_status(error, self.domain)
    }
}

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("the request has invalid fields")]
    Invalid(Vec<crate::error::FieldViolation>),
    #[error(
        "after_cursor cannot be resumed: {0}. Nothing was skipped. Decide how to resume: \
         replay from the start (consumers deduplicate by event id) or take a new snapshot"
    )]
    Expired(&'static str),
    #[error("the feed could not be read")]
    Storage(#[from] StorageError),
}

impl ServiceError for FeedError {
    fn code(&self) -> Code {
        match self {
            FeedError::Invalid(_) => Code::InvalidArgument,
            FeedError::Expired(_) => Code::FailedPrecondition,
            FeedError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            FeedError::Invalid(_) => "INVALID_ARGUMENT",
            FeedError::Expired(_) => "CURSOR_EXPIRED",
            FeedError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[crate::error::FieldViolation] {
        match self {
            FeedError::Invalid(v) => v,
            _ => &[],
        }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventFeedService for Feed {
    type SubscribeStream = SubscribeStream;

    #[tracing::instrument(skip_all, fields(feed = self.source))]
    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        auth::require_any(&request, self.roles)?;
        let mut violations = Violations::new();
        let cursor = violations.check(
            "after_cursor",
            Cursor::parse(&request.get_ref().after_cursor),
        );
        if let Err(v) = violations.finish() {
            return Err(self.status(FeedError::Invalid(v)));
        }
        let cursor = cursor.unwrap_or(Cursor::START);
        let conn = self.db.read().await.map_err(|e| self.status(e.into()))?;
        if let Some(mismatch) = outbox::cursor::check(conn, cursor)
            .await
            .map_err(|e| self.status(e.into()))?
        {
            tracing::warn!(feed = self.source, cause = ?mismatch, "refused a cursor from another history of the feed");
            return Err(self.status(FeedError::Expired(mismatch.explain())));
        }
        let (tx, rx) = mpsc::channel(BATCH as usize);
        tokio::spawn(self.clone().pump(cursor, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Whether a refusal from a feed means its cursor cannot be resumed: it belongs to
/// another history, or the feed does not read it at all (a cursor of another feed, or of
/// an older version).
pub fn is_expired_cursor(status: &Status) -> bool {
    use tonic_types::StatusExt;
    let expired = status.code() == tonic::Code::FailedPrecondition
        && status
            .get_details_error_info()
            .is_some_and(|info| info.reason == "CURSOR_EXPIRED");
    let unreadable = status.code() == tonic::Code::InvalidArgument
        && crate::error::status_violations(status)
            .iter()
            .any(|v| v.field == "after_cursor");
    expired || unreadable
}
