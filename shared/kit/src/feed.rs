//! The `EventFeedService` every producing service serves: replay after a cursor, then
//! follow new events as they commit (woken by the outbox signal, not by polling), with
//! heartbeats while idle. The same code serves in-house consumers and outside subscribers.

use std::{pin::Pin, time::Duration};

use custos_proto::common::v1::{
    Event, Heartbeat, SubscribeRequest, SubscribeResponse,
    event_feed_service_server::{EventFeedService, EventFeedServiceServer},
    subscribe_response::Item,
};
use prost_types::{Any, Timestamp};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    auth::{self, Role},
    error::{Code, ServiceError, Violations, into_status},
    outbox::{self, Cursor, StoredEvent},
    storage::{Db, StorageError},
};

/// Events read per query.
const BATCH: i64 = 256;
/// First wait before re-reading when an event is held back behind an open transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);

/// Serves one service's outbox as a feed.
#[derive(Debug, Clone)]
pub struct Feed {
    db: Db,
    source: &'static str,
    heartbeat: Duration,
    roles: &'static [Role],
    shutdown: CancellationToken,
}

impl Feed {
    /// `source` names the producing service; `roles` may subscribe.
    pub fn new(
        db: Db,
        source: &'static str,
        heartbeat: Duration,
        roles: &'static [Role],
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            db,
            source,
            heartbeat,
            roles,
            shutdown,
        }
    }

    pub fn into_server(self) -> EventFeedServiceServer<Self> {
        EventFeedServiceServer::new(self)
    }

    fn to_event(&self, stored: StoredEvent) -> Event {
        Event {
            cursor: stored.cursor.to_string(),
            event_id: stored.event_id.to_string(),
            event_type: stored.event_type.clone(),
            occurred_at: Some(timestamp(stored.occurred_at)),
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

    /// Streams into `tx` until the subscriber goes away, the server shuts down or the
    /// database fails (the subscriber then resumes from its last cursor).
    async fn pump(self, mut cursor: Cursor, tx: mpsc::Sender<Result<SubscribeResponse, Status>>) {
        let mut changes = self.db.outbox_changes();
        let mut held_back_wait = HELD_BACK_RETRY;
        loop {
            // Mark the signal seen before reading, so a commit after the read wakes us.
            changes.borrow_and_update();
            let batch = match outbox::read_after(&self.db, cursor, BATCH).await {
                Ok(batch) => batch,
                Err(error) => {
                    let _ = tx.send(Err(into_status(FeedError::Storage(error)))).await;
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
            if batch.full {
                continue;
            }
            let wait = if batch.held_back {
                held_back_wait = (held_back_wait * 2).min(Duration::from_secs(1));
                held_back_wait / 2
            } else {
                held_back_wait = HELD_BACK_RETRY;
                self.heartbeat
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                changed = changes.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep(wait) => {
                    if !batch.held_back {
                        let beat = Item::Heartbeat(Heartbeat {
                            sent_at: Some(timestamp(time::OffsetDateTime::now_utc())),
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
}

pub fn timestamp(at: time::OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: at.unix_timestamp(),
        nanos: at.nanosecond() as i32,
    }
}

#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("the feed could not be read")]
    Storage(#[from] StorageError),
}

impl ServiceError for FeedError {
    fn code(&self) -> Code {
        match self {
            FeedError::Storage(e) => e.code(),
        }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventFeedService for Feed {
    type SubscribeStream = SubscribeStream;

    #[tracing::instrument(skip_all, fields(source = self.source))]
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
            return Err(into_status(crate::error::InvalidRequest(v)));
        }
        let cursor = cursor.unwrap_or(Cursor::START);
        let (tx, rx) = mpsc::channel(BATCH as usize);
        tokio::spawn(self.clone().pump(cursor, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
