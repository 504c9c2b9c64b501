//! Consuming another service's feed.
//!
//! - **Exactly one effect.** The consumer records each event id it applied and moves its
//!   cursor in the same transaction as the handler's effect (the handler gets that
//!   [`Tx`] and calls store functions with it): a crash replays at most what had no
//!   effect, and a replayed event is recognised and skipped.
//! - **One replica at a time.** On PostgreSQL a replica takes the consumer's lease (an
//!   advisory lock on a connection of its own) and then makes its session the cursor
//!   row's holder. Every event moves the cursor only where the holder is still that
//!   session, so a replica that lost its lease (its lease connection dropped, another
//!   took over) is fenced off at its next event instead of applying it.
//! - **Never stuck.** An event the handler keeps failing on is parked after the
//!   configured attempts (see [`parking`]) and the consumer moves on; an operator lists
//!   and replays parked events. Outages only delay: the consumer reconnects with backoff.
//! - **Never silent.** A feed that refuses the stored cursor as belonging to another
//!   history stops the consumer with an ERROR until an operator resets it.

mod admin;
mod lease;
pub mod parking;

pub use admin::FeedAdmin;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use custos_proto::common::v1::{
    Event, SubscribeRequest, event_feed_service_client::EventFeedServiceClient,
    subscribe_response::Item,
};
use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

use crate::{
    client::ClientInterceptor,
    error::{Code, DisplayChain, ServiceError},
    outbox::Cursor,
    storage::{Db, DbTime, StorageError, Tx},
    with_conn,
};
use lease::Lease;

/// Why a handler could not apply an event. Errors that say nothing about the event (the
/// database unreachable, a serialization failure or deadlock) are transient: they are
/// retried without counting towards parking it. Any `ServiceError` converts with `?`
/// and is judged by its code; other failures are `HandlerError::failed`.
#[derive(Debug)]
pub struct HandlerError {
    transient: bool,
    error: Box<dyn std::error::Error + Send + Sync>,
}

impl HandlerError {
    /// The event could not be applied (counts towards parking it).
    pub fn failed(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            transient: false,
            error: error.into(),
        }
    }

    /// A failure that says nothing about the event: retried, not counted.
    pub fn transient(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            transient: true,
            error: error.into(),
        }
    }
}

impl<E: ServiceError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let transient = matches!(error.code(), Code::Unavailable | Code::Aborted);
        Self {
            transient,
            error: Box::new(error),
        }
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        DisplayChain(self.error.as_ref()).fmt(f)
    }
}

/// Applies one event inside the consumer's transaction. Store functions called with
/// `tx` commit with the consumer's cursor, or not at all.
pub trait EventHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;
}

/// Whether an event is about something an anonymous caller did: such events have random
/// (version 4) ids and no trace context (see `NewEvent::anonymous`).
pub(crate) fn is_anonymous(event: &Event) -> bool {
    event.trace_context.is_empty()
        && Uuid::try_parse(&event.event_id).is_ok_and(|id| id.get_version_num() == 4)
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

/// How a consumer retries, parks and watches its lease (from the `[feed]` section).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerOptions {
    /// Failed attempts at one event before it is parked.
    pub max_attempts: u32,
    /// First wait before retrying an event; it doubles up to [`MAX_BACKOFF`].
    pub retry_backoff: Duration,
    /// How often a replica without the lease tries to take it.
    pub standby_retry: Duration,
    /// How often the holder checks that its lease connection is still alive.
    pub lease_check: Duration,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_backoff: Duration::from_millis(200),
            standby_retry: Duration::from_secs(2),
            lease_check: Duration::from_secs(5),
        }
    }
}

/// Longest wait between two attempts or reconnections.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a consumer is doing (for the admin API and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerState {
    Connecting(String),
    Running,
    Standby,
    /// Stopped until an operator resets it.
    Stopped(String),
}

/// A consumer of one feed. Cheap to clone: clones share one consumer.
#[derive(Clone)]
pub struct Consumer {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    db: Db,
    source: FeedSource,
    handler: Arc<dyn EventHandler>,
    options: ConsumerOptions,
    state: Mutex<ConsumerState>,
    lag_secs: Mutex<f64>,
    restart: Notify,
    lag: Gauge<f64>,
    parked: Counter<u64>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// How one session with the feed ended.
enum Session {
    /// The feed ended or shutdown began.
    Ended,
    /// Another replica holds the lease.
    Standby,
    /// The feed refused the cursor: stop until an operator acts.
    Stopped(String),
}

/// Why applying an event failed.
enum ApplyError {
    /// This session is no longer the cursor's holder.
    Fenced,
    Storage(StorageError),
    Handler(HandlerError),
}

impl ApplyError {
    /// Failures that say nothing about the event (the database unreachable, a
    /// serialization failure) do not count towards parking it.
    fn is_transient(&self) -> bool {
        match self {
            ApplyError::Fenced => false,
            ApplyError::Storage(e) => matches!(e.code(), Code::Unavailable | Code::Aborted),
            ApplyError::Handler(e) => e.transient,
        }
    }

    fn describe(&self) -> String {
        match self {
            ApplyError::Fenced => "another replica took over the consumer's lease".into(),
            ApplyError::Storage(e) => DisplayChain(e).to_string(),
            ApplyError::Handler(e) => e.to_string(),
        }
    }
}

impl From<StorageError> for ApplyError {
    fn from(e: StorageError) -> Self {
        ApplyError::Storage(e)
    }
}

impl Consumer {
    /// `name` identifies the consumer's cursor and lease, e.g. `classification.intake`.
    pub fn new(
        name: impl Into<String>,
        db: Db,
        source: FeedSource,
        handler: impl EventHandler,
        options: ConsumerOptions,
    ) -> Self {
        let meter = opentelemetry::global::meter("custos");
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                db,
                source,
                handler: Arc::new(handler),
                options,
                state: Mutex::new(ConsumerState::Connecting(String::new())),
                lag_secs: Mutex::new(0.0),
                restart: Notify::new(),
                lag: meter
                    .f64_gauge("custos.feed.consumer.lag")
                    .with_unit("s")
                    .with_description(
                        "How old the last applied event was when it was applied; 0 when caught up",
                    )
                    .build(),
                parked: meter
                    .u64_counter("custos.feed.consumer.parked")
                    .with_description(
                        "Events parked after failing the configured number of attempts",
                    )
                    .build(),
            }),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn state(&self) -> ConsumerState {
        self.inner.state.lock().expect("state lock").clone()
    }

    fn set_state(&self, state: ConsumerState) {
        *self.inner.state.lock().expect("state lock") = state;
    }

    /// Seconds since the last applied event occurred (0 when caught up).
    pub fn lag_secs(&self) -> f64 {
        *self.inner.lag_secs.lock().expect("lag lock")
    }

    fn record_lag(&self, secs: f64) {
        *self.inner.lag_secs.lock().expect("lag lock") = secs;
        self.inner
            .lag
            .record(secs, &[KeyValue::new("consumer", self.inner.name.clone())]);
    }

    /// The stored cursor ("" before the first event).
    pub async fn cursor(&self) -> Result<String, StorageError> {
        const SQL: &str = "SELECT cursor FROM consumer_cursors WHERE consumer = $1";
        let mut conn = self.inner.db.read().await?;
        Ok(with_conn!(&mut conn, c => {
            sqlx::query_scalar::<_, String>(SQL).bind(&self.inner.name).fetch_optional(&mut *c).await?
        })
        .unwrap_or_default())
    }

    /// Consumes until `stopping`. An event being applied is finished first.
    pub async fn run(self, stopping: CancellationToken) {
        let mut backoff = self.inner.options.retry_backoff;
        while !stopping.is_cancelled() {
            let wait = match self.session(&stopping).await {
                Ok(Session::Ended) => {
                    backoff = self.inner.options.retry_backoff;
                    backoff
                }
                Ok(Session::Standby) => {
                    self.set_state(ConsumerState::Standby);
                    self.inner.options.standby_retry
                }
                Ok(Session::Stopped(reason)) => {
                    tracing::error!(
                        consumer = %self.inner.name,
                        %reason,
                        "feed consumer STOPPED: its cursor belongs to another history of the \
                         feed. Nothing was skipped. Reset it (custos feed reset) to resume"
                    );
                    self.set_state(ConsumerState::Stopped(reason));
                    tokio::select! {
                        _ = stopping.cancelled() => return,
                        _ = self.inner.restart.notified() => {}
                    }
                    continue;
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.inner.name, %error, retry_in_ms = backoff.as_millis() as u64, "feed consumer interrupted");
                    self.set_state(ConsumerState::Connecting(error));
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = stopping.cancelled() => return,
                _ = self.inner.restart.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One connection: take the lease and the cursor, subscribe, apply events.
    async fn session(&self, stopping: &CancellationToken) -> Result<Session, String> {
        let lease = Lease::acquire(&self.inner.db, &self.inner.name)
            .await
            .map_err(|e| DisplayChain(&e).to_string())?;
        let Some(mut lease) = lease else {
            tracing::debug!(consumer = %self.inner.name, "another replica holds the lease");
            return Ok(Session::Standby);
        };
        let holder = Uuid::new_v4().to_string();
        let result = async {
            let cursor = self
                .take_over(&holder)
                .await
                .map_err(|e| DisplayChain(&e).to_string())?;
            self.follow(stopping, &mut lease, &holder, cursor).await
        }
        .await;
        lease.release().await;
        result
    }

    /// Makes this session the holder of the cursor row and returns the cursor.
    async fn take_over(&self, holder: &str) -> Result<String, StorageError> {
        const SQL: &str = "INSERT INTO consumer_cursors (consumer, cursor, updated_at, holder) \
             VALUES ($1, '', $2, $3) ON CONFLICT (consumer) DO UPDATE SET holder = excluded.holder \
             RETURNING cursor";
        let mut tx = self.inner.db.begin().await?;
        let cursor: String = with_conn!(&mut tx, c => {
            sqlx::query_scalar(SQL).bind(&self.inner.name).bind(DbTime::now()).bind(holder).fetch_one(&mut *c).await?
        });
        tx.commit().await?;
        Ok(cursor)
    }

    async fn follow(
        &self,
        stopping: &CancellationToken,
        lease: &mut Lease,
        holder: &str,
        mut cursor: String,
    ) -> Result<Session, String> {
        let interceptor = ClientInterceptor::bearer(&(self.inner.source.token)())?;
        let mut client = EventFeedServiceClient::new(InterceptedService::new(
            self.inner.source.channel.clone(),
            interceptor,
        ));
        let mut stream = match client
            .subscribe(SubscribeRequest {
                after_cursor: cursor.clone(),
            })
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) if crate::feed::is_expired_cursor(&status) => {
                return Ok(Session::Stopped(status.message().to_owned()));
            }
            Err(status) => return Err(format!("subscribe: {}", status.message())),
        };
        self.set_state(ConsumerState::Running);
        let mut lease_check = tokio::time::interval(self.inner.options.lease_check);
        lease_check.tick().await;
        loop {
            let item = tokio::select! {
                _ = stopping.cancelled() => return Ok(Session::Ended),
                // Reset by an operator: start again from the stored cursor.
                _ = self.inner.restart.notified() => return Ok(Session::Ended),
                _ = lease_check.tick() => {
                    if !lease.alive().await {
                        return Err("the consumer's lease connection was lost".into());
                    }
                    continue;
                }
                item = stream.message() => item,
            };
            let item = match item {
                Ok(Some(item)) => item,
                Ok(None) => return Err("the feed ended".into()),
                Err(status) if crate::feed::is_expired_cursor(&status) => {
                    return Ok(Session::Stopped(status.message().to_owned()));
                }
                Err(status) => return Err(format!("feed: {}", status.message())),
            };
            match item.item {
                Some(Item::Event(event)) => {
                    self.apply_with_retries(stopping, &event, holder).await?;
                    cursor = event.cursor.clone();
                }
                Some(Item::Heartbeat(beat)) => {
                    if beat.cursor == cursor {
                        self.record_lag(0.0);
                    }
                }
                // An item this build does not know (a newer producer): ignore it.
                None => {
                    tracing::debug!(consumer = %self.inner.name, "ignoring an unknown feed item")
                }
            }
        }
    }

    /// Applies one event, retrying with backoff; parks it after the configured attempts.
    /// Only losing the lease (or shutdown) ends the session from here.
    async fn apply_with_retries(
        &self,
        stopping: &CancellationToken,
        event: &Event,
        holder: &str,
    ) -> Result<(), String> {
        let mut backoff = self.inner.options.retry_backoff;
        let mut failed = false;
        loop {
            let error = match self.apply(event, holder).await {
                Ok(()) => {
                    if failed {
                        let _ = parking::forget_failures(&self.inner, event).await;
                    }
                    return Ok(());
                }
                Err(ApplyError::Fenced) => {
                    return Err("another replica took over the consumer's lease".into());
                }
                Err(error) => error,
            };
            failed = true;
            if !error.is_transient() {
                let attempts = parking::record_failure(&self.inner, event, &error.describe())
                    .await
                    .unwrap_or(0);
                if attempts >= self.inner.options.max_attempts {
                    return match parking::park(
                        &self.inner,
                        event,
                        holder,
                        &error.describe(),
                        attempts,
                    )
                    .await
                    {
                        Ok(()) => Ok(()),
                        Err(ApplyError::Fenced) => {
                            Err("another replica took over the consumer's lease".into())
                        }
                        Err(e) => Err(format!(
                            "parking event {} failed: {}",
                            if is_anonymous(event) {
                                "(anonymous)"
                            } else {
                                event.event_id.as_str()
                            },
                            e.describe()
                        )),
                    };
                }
                // Nothing about an anonymous report's event in a line whose exact time
                // could date it: its failures are kept, stamped to the minute, and shown by
                // `custos feed consumers` / `parked`.
                if !is_anonymous(event) {
                    tracing::warn!(consumer = %self.inner.name, event_id = %event.event_id, event_type = %event.event_type, attempts, error = %error.describe(), "applying an event failed; retrying");
                }
            } else if !is_anonymous(event) {
                tracing::warn!(consumer = %self.inner.name, event_id = %event.event_id, error = %error.describe(), "applying an event failed for a passing reason (database unavailable, a concurrent change); retrying");
            }
            tokio::select! {
                _ = stopping.cancelled() => return Err("shutting down".into()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Applies one event exactly once in effect, in one transaction with the cursor.
    async fn apply(&self, event: &Event, holder: &str) -> Result<(), ApplyError> {
        let inner = &self.inner;
        let event_id = parking::event_key(event);
        let mut tx = inner.db.begin().await?;
        if parking::first_time(&mut tx, &inner.name, event_id).await? {
            // An event about something an anonymous caller did (a random id, see
            // `NewEvent::anonymous`) is not named on a span: the span's times would date it.
            let span = if is_anonymous(event) {
                tracing::info_span!("apply_event", consumer = %inner.name, event_type = %event.event_type)
            } else {
                tracing::info_span!("apply_event", consumer = %inner.name, event_type = %event.event_type, event_id = %event.event_id)
            };
            let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
                &span,
                crate::propagation::context_from_map(&event.trace_context),
            );
            tracing::Instrument::instrument(inner.handler.handle(&mut tx, event), span)
                .await
                .map_err(ApplyError::Handler)?;
        }
        parking::advance(&mut tx, &inner.name, holder, &event.cursor).await?;
        tx.commit().await?;
        // Not for an anonymous report's event: its time is cut to the minute, so the lag
        // would be the seconds into that minute, which date it.
        if let Some(at) = event
            .occurred_at
            .as_ref()
            .filter(|_| !is_anonymous(event))
            .and_then(crate::time_fmt::from_timestamp)
        {
            self.record_lag(
                (time::OffsetDateTime::now_utc() - at)
                    .as_seconds_f64()
                    .max(0.0),
            );
        }
        Ok(())
    }

    /// Sets the stored cursor (empty: the start of the feed) and restarts the consumer.
    /// The running session, if any, is fenced off at its next event.
    pub async fn reset(&self, cursor: &str) -> Result<(), StorageError> {
        const SQL: &str = "INSERT INTO consumer_cursors (consumer, cursor, updated_at, holder) \
             VALUES ($1, $2, $3, NULL) ON CONFLICT (consumer) DO UPDATE \
             SET cursor = excluded.cursor, updated_at = excluded.updated_at, holder = NULL";
        let mut tx = self.inner.db.begin().await?;
        with_conn!(&mut tx, c => {
            sqlx::query(SQL).bind(&self.inner.name).bind(cursor).bind(DbTime::now()).execute(&mut *c).await?;
        });
        tx.commit().await?;
        tracing::warn!(consumer = %self.inner.name, %cursor, "feed consumer reset by an operator");
        self.set_state(ConsumerState::Connecting("reset by an operator".into()));
        self.inner.restart.notify_one();
        Ok(())
    }

    /// Whether `cursor` parses as a cursor (an empty one is the start).
    pub fn valid_cursor(cursor: &str) -> Result<(), String> {
        Cursor::parse(cursor).map(|_| ())
    }
}
