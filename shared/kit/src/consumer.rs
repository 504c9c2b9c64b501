//! Consuming another service's feed. The consumer keeps its cursor in its own database
//! and updates it in the same transaction as the effect of each event, and records each
//! event id it applied: a crash replays at most what had no effect, and a replayed event
//! has no second effect. On PostgreSQL one replica at a time holds the consumer's lease
//! (an advisory lock); the others wait. Outages of either side end in a reconnect from
//! the stored cursor, with backoff.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use custos_proto::common::v1::{
    Event, SubscribeRequest, event_feed_service_client::EventFeedServiceClient,
    subscribe_response::Item,
};
use sqlx::{Connection, PgConnection, Postgres, Sqlite, Transaction};
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

use crate::{
    client::ClientInterceptor,
    db_time::DbTime,
    storage::{Db, Pool, StorageError},
    with_pool,
};

/// A transaction on the consumer's database, on either backend.
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// Runs `$body` with `$t` bound to the concrete transaction of either backend.
#[macro_export]
macro_rules! with_tx {
    ($tx:expr, $t:ident => $body:expr) => {
        match $tx {
            $crate::consumer::Tx::Postgres($t) => $body,
            $crate::consumer::Tx::Sqlite($t) => $body,
        }
    };
}

pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Applies one event inside the consumer's transaction.
pub trait EventHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;
}

/// Where a consumer finds the feed and how it authenticates.
#[derive(Clone)]
pub struct FeedSource {
    pub channel: Channel,
    /// Called for each connection, so that tokens can be refreshed.
    pub token: Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for FeedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedSource").finish_non_exhaustive()
    }
}

pub struct Consumer<H> {
    name: String,
    db: Db,
    source: FeedSource,
    handler: H,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a replica without the lease tries to take it.
const STANDBY: Duration = Duration::from_secs(2);

enum Session {
    /// The feed ended or shutdown began.
    Ended,
    /// Another replica holds the lease.
    Standby,
}

impl<H: EventHandler> Consumer<H> {
    /// `name` identifies the consumer's cursor and lease, e.g. `classification.intake`.
    pub fn new(name: impl Into<String>, db: Db, source: FeedSource, handler: H) -> Self {
        Self {
            name: name.into(),
            db,
            source,
            handler,
        }
    }

    /// The stored cursor ("" before the first event).
    pub async fn cursor(&self) -> Result<String, StorageError> {
        stored_cursor(&self.db, &self.name).await
    }

    /// Consumes until `shutdown`. An event being applied is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            let wait = match self.session(&shutdown).await {
                Ok(Session::Ended) => {
                    backoff = Duration::from_millis(100);
                    backoff
                }
                Ok(Session::Standby) => STANDBY,
                Err(error) => {
                    tracing::warn!(consumer = %self.name, %error, retry_in_ms = backoff.as_millis() as u64, "feed consumer interrupted");
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection: take the lease, subscribe from the stored cursor, apply events.
    async fn session(&self, shutdown: &CancellationToken) -> Result<Session, String> {
        let lease = Lease::acquire(&self.db, &self.name)
            .await
            .map_err(|e| e.to_string())?;
        let Some(lease) = lease else {
            tracing::debug!(consumer = %self.name, "another replica holds the lease");
            return Ok(Session::Standby);
        };
        let result = self.follow(shutdown).await;
        lease.release().await;
        result.map(|()| Session::Ended)
    }

    async fn follow(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let after_cursor = self.cursor().await.map_err(|e| e.to_string())?;
        let interceptor = ClientInterceptor::bearer(&(self.source.token)())?;
        let mut client = EventFeedServiceClient::new(InterceptedService::new(
            self.source.channel.clone(),
            interceptor,
        ));
        let mut stream = client
            .subscribe(SubscribeRequest { after_cursor })
            .await
            .map_err(|s| format!("subscribe: {}", s.message()))?
            .into_inner();
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                item = stream.message() => item.map_err(|s| format!("feed: {}", s.message()))?,
            };
            match item.and_then(|i| i.item) {
                Some(Item::Event(event)) => self.apply(&event).await?,
                Some(Item::Heartbeat(_)) => {}
                None => return Err("the feed ended".into()),
            }
        }
    }

    /// Applies one event exactly once in effect.
    async fn apply(&self, event: &Event) -> Result<(), String> {
        const SEEN: &str = "INSERT INTO consumed_events (consumer, event_id, consumed_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        const CURSOR: &str = "INSERT INTO consumer_cursors (consumer, cursor, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (consumer) DO UPDATE \
             SET cursor = excluded.cursor, updated_at = excluded.updated_at";
        let event_id =
            Uuid::try_parse(&event.event_id).map_err(|_| "event without a valid id".to_owned())?;
        let now = DbTime::now();
        let span = tracing::info_span!("apply_event", consumer = %self.name, event_type = %event.event_type, event_id = %event.event_id);
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
            &span,
            crate::propagation::context_from_map(&event.trace_context),
        );
        let fail = |e: StorageError| e.to_string();
        let mut tx = match self.db.writer() {
            Pool::Postgres(p) => Tx::Postgres(p.begin().await.map_err(|e| fail(e.into()))?),
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await.map_err(|e| fail(e.into()))?),
        };
        let first_time = with_tx!(&mut tx, t => {
            sqlx::query(SEEN).bind(&self.name).bind(event_id).bind(now).execute(&mut **t).await.map(|r| r.rows_affected())
        })
        .map_err(|e| fail(e.into()))?
            == 1;
        if first_time {
            tracing::Instrument::instrument(self.handler.handle(&mut tx, event), span)
                .await
                .map_err(|e| format!("handler failed on event {}: {e}", event.event_id))?;
        }
        with_tx!(&mut tx, t => {
            sqlx::query(CURSOR).bind(&self.name).bind(&event.cursor).bind(now).execute(&mut **t).await.map(|_| ())
        })
        .map_err(|e| fail(e.into()))?;
        with_tx!(tx, t => t.commit().await).map_err(|e| fail(e.into()))?;
        Ok(())
    }
}

async fn stored_cursor(db: &Db, name: &str) -> Result<String, StorageError> {
    const SQL: &str = "SELECT cursor FROM consumer_cursors WHERE consumer = $1";
    Ok(with_pool!(db.reader(), p => {
        sqlx::query_scalar::<_, String>(SQL).bind(name).fetch_optional(&p).await?
    })
    .unwrap_or_default())
}

/// One replica at a time: a session-level advisory lock on a connection of its own,
/// detached from the pool. If the consumer dies, the connection closes with it and the
/// lock goes too; a pooled connection would keep the lock and lock everyone out.
enum Lease {
    Postgres(PgConnection, String),
    Sqlite,
}

impl Lease {
    async fn acquire(db: &Db, name: &str) -> Result<Option<Lease>, StorageError> {
        const TRY: &str =
            "SELECT pg_try_advisory_lock(hashtextextended('custos.consumer.' || $1, 0))";
        match db.writer() {
            Pool::Postgres(p) => {
                let mut conn = p.acquire().await?.detach();
                let got: bool = sqlx::query_scalar(TRY)
                    .bind(name)
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    Ok(Some(Lease::Postgres(conn, name.to_owned())))
                } else {
                    let _ = conn.close().await;
                    Ok(None)
                }
            }
            // Standalone mode: one process, one consumer.
            Pool::Sqlite(_) => Ok(Some(Lease::Sqlite)),
        }
    }

    async fn release(self) {
        const UNLOCK: &str =
            "SELECT pg_advisory_unlock(hashtextextended('custos.consumer.' || $1, 0))";
        if let Lease::Postgres(mut conn, name) = self {
            let _ = sqlx::query(UNLOCK).bind(&name).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}
