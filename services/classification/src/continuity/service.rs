//! ContinuityService: the snapshot (ListIncidentNotices) and the stream
//! (WatchIncidentNotices). A stream replays from the database after its cursor, then
//! switches to the hub's broadcast; it is driven by the subscriber reading it, so a
//! stalled subscriber costs a receiver and nothing else, and is cut off once the
//! broadcast has moved on past what it had not read.

use std::{collections::VecDeque, pin::Pin, sync::Arc, time::Duration};

use custos_kit::{
    auth::{self, Role},
    error::{Code, FieldViolation, ServiceError, Violations},
    outbox::{self, Cursor},
    page::{self, PageTokens},
    storage::{Db, StorageError},
    time_fmt::to_timestamp,
};
use custos_proto::continuity::v1::{
    self as cpb, continuity_service_server::ContinuityService,
    watch_incident_notices_response::Item,
};
use futures_util::Stream;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{Semaphore, broadcast},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::hub::{Hub, HubItem, is_notice};
use crate::{
    error::DOMAIN,
    store::{self, IncidentPage},
};

/// Who may follow the feed: business continuity's systems, and services.
pub const ROLES: &[Role] = &[Role::BusinessContinuity, Role::Service];

/// Events read per query while replaying.
const BATCH: i64 = 256;

#[derive(Debug, thiserror::Error)]
enum ContinuityError {
    #[error("the request has invalid fields")]
    Invalid(Vec<FieldViolation>),
    #[error(
        "after_cursor cannot be resumed: {0}. Nothing was skipped: take a new snapshot \
         (ListIncidentNotices) and watch from its cursor"
    )]
    Expired(&'static str),
    #[error(
        "this stream fell too far behind the live changes and was ended; nothing is lost: \
         resume from the last cursor received"
    )]
    TooSlow,
    #[error("the service is stopping; resume from the last cursor received")]
    Stopping,
    #[error("the feed could not be read")]
    Storage(#[from] StorageError),
}

impl ServiceError for ContinuityError {
    fn code(&self) -> Code {
        match self {
            ContinuityError::Invalid(_) => Code::InvalidArgument,
            ContinuityError::Expired(_) => Code::FailedPrecondition,
            ContinuityError::TooSlow => Code::ResourceExhausted,
            ContinuityError::Stopping => Code::Unavailable,
            ContinuityError::Storage(e) => e.code(),
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ContinuityError::Invalid(_) => "INVALID_ARGUMENT",
            ContinuityError::Expired(_) => "CURSOR_EXPIRED",
            ContinuityError::TooSlow => "SUBSCRIBER_TOO_SLOW",
            ContinuityError::Stopping => "SERVICE_STOPPING",
            ContinuityError::Storage(e) => e.reason(),
        }
    }

    fn violations(&self) -> &[FieldViolation] {
        match self {
            ContinuityError::Invalid(v) => v,
            _ => &[],
        }
    }
}

fn status(e: ContinuityError) -> Status {
    custos_kit::error::into_status(e, DOMAIN)
}

/// A subscriber's filter, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
struct Filter {
    /// 1 (low) to 3 (high); 0: any.
    minimum_level: i32,
    services: Vec<String>,
}

impl Filter {
    fn parse(v: &mut Violations, f: Option<cpb::NoticeFilter>) -> Filter {
        let f = f.unwrap_or_default();
        let minimum_level = match cpb::IncidentLevel::try_from(f.minimum_level) {
            Ok(level) => level as i32,
            Err(_) => {
                v.add(
                    "filter.minimum_level",
                    format!("unknown value {} (LOW, MEDIUM or HIGH)", f.minimum_level),
                );
                0
            }
        };
        if f.business_services.len() > 50 {
            v.add("filter.business_services", "at most 50");
        }
        for (i, code) in f.business_services.iter().enumerate() {
            let ok = (1..=64).contains(&code.len())
                && code.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                v.add(
                    format!("filter.business_services[{i}]"),
                    "must be a business service code (lower case letters, digits, - and _)",
                );
            }
        }
        let mut services = f.business_services;
        services.sort();
        services.dedup();
        Filter {
            minimum_level,
            services,
        }
    }

    fn matches(&self, n: &cpb::IncidentNotice) -> bool {
        n.highest_level >= self.minimum_level
            && (self.services.is_empty()
                || self
                    .services
                    .iter()
                    .any(|s| n.ever_affected_services.contains(s)))
    }
}

/// What a public cursor is sealed under: opaque to subscribers (it names positions of
/// the service's internal events), and bound to this feed.
const CURSOR_SCOPE: &[u8] = b"custos.continuity.v1 cursor";

/// A cursor as subscribers hold it: sealed, versioned inside.
fn seal_cursor(tokens: &PageTokens, cursor: Cursor) -> String {
    if cursor.is_start() {
        return String::new();
    }
    tokens.seal(CURSOR_SCOPE, &cursor.to_string())
}

/// A cursor a subscriber sent back (empty: the start).
fn open_cursor(tokens: &PageTokens, text: &str) -> Result<Cursor, String> {
    match tokens.open::<String>(CURSOR_SCOPE, text) {
        Ok(None) => Ok(Cursor::START),
        Ok(Some(inner)) => Cursor::parse(&inner),
        Err(_) => Err("is not a cursor issued by this feed".into()),
    }
}

/// Where a snapshot's pages stand: the cursor it was taken at, and the last incident
/// listed.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPage {
    cursor: String,
    after: Option<IncidentPage>,
}

/// Replay batches read at once across every stream: a thousand subscribers
/// reconnecting after a deploy must leave the read connections to the API (at most
/// half of them).
const REPLAYS_AT_ONCE: usize = 4;

#[derive(Debug, Clone)]
pub struct ContinuityApi {
    db: Db,
    hub: Hub,
    heartbeat: Duration,
    stopping: CancellationToken,
    replays: Arc<Semaphore>,
}

impl ContinuityApi {
    pub fn new(db: Db, hub: Hub, heartbeat: Duration, stopping: CancellationToken) -> Self {
        let replays = REPLAYS_AT_ONCE.min(db.max_read_connections() as usize / 2);
        Self {
            db,
            hub,
            heartbeat,
            stopping,
            replays: Arc::new(Semaphore::new(replays.max(1))),
        }
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = Result<cpb::WatchIncidentNoticesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ContinuityService for ContinuityApi {
    #[tracing::instrument(skip_all)]
    async fn list_incident_notices(
        &self,
        request: Request<cpb::ListIncidentNoticesRequest>,
    ) -> Result<Response<cpb::ListIncidentNoticesResponse>, Status> {
        auth::require_any(&request, ROLES)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = Filter::parse(&mut v, req.filter);
        let limit = page::size(&mut v, "page_size", req.page_size);
        let scope = format!("ListIncidentNotices {filter:?}");
        let tokens = self.db.page_tokens();
        let page = v
            .check(
                "page_token",
                tokens.open::<SnapshotPage>(scope.as_bytes(), &req.page_token),
            )
            .flatten();
        v.finish()
            .map_err(|v| status(ContinuityError::Invalid(v)))?;
        let mut conn = self.db.read().await.map_err(|e| status(e.into()))?;
        // The cursor first: what changes after it, the watch sends (again, if the
        // snapshot already shows it).
        let (cursor, after) = match page {
            Some(p) => (p.cursor, p.after),
            None => (
                seal_cursor(
                    tokens,
                    outbox::head(&mut conn)
                        .await
                        .map_err(|e| status(e.into()))?,
                ),
                None,
            ),
        };
        let mut rows = store::published_incidents(
            &mut conn,
            filter.minimum_level as i16,
            &filter.services,
            after,
            limit + 1,
        )
        .await
        .map_err(|e| status(e.into()))?;
        let next_page_token = page::cut(&mut rows, limit, |r| {
            tokens.seal(
                scope.as_bytes(),
                &SnapshotPage {
                    cursor: cursor.clone(),
                    after: Some(IncidentPage {
                        declared_at: r.declared_at,
                        id: r.id,
                    }),
                },
            )
        });
        Ok(Response::new(cpb::ListIncidentNoticesResponse {
            notices: rows.iter().filter_map(super::notice).collect(),
            next_page_token,
            cursor,
        }))
    }

    type WatchIncidentNoticesStream = WatchStream;

    #[tracing::instrument(skip_all)]
    async fn watch_incident_notices(
        &self,
        request: Request<cpb::WatchIncidentNoticesRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        auth::require_any(&request, ROLES)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = Filter::parse(&mut v, req.filter);
        v.finish()
            .map_err(|v| status(ContinuityError::Invalid(v)))?;
        if !self.hub.is_alive() {
            return Err(status(ContinuityError::Stopping));
        }
        // A cursor this feed's database cannot open was sealed under another key: another
        // deployment, or this one's database before it was re-created. Another history,
        // as far as the subscriber can tell: a new snapshot, not a fixed request.
        let cursor = open_cursor(self.db.page_tokens(), &req.after_cursor).map_err(|_| {
            status(ContinuityError::Expired(
                "this cursor was not issued by this feed's present database (another \
                 deployment, or a database created again since)",
            ))
        })?;
        let conn = self.db.read().await.map_err(|e| status(e.into()))?;
        if let Some(mismatch) = outbox::cursor::check(conn, cursor)
            .await
            .map_err(|e| status(e.into()))?
        {
            tracing::warn!(cause = ?mismatch, "refused a continuity cursor from another history");
            return Err(status(ContinuityError::Expired(mismatch.explain())));
        }
        let watch = Watch {
            db: self.db.clone(),
            hub: self.hub.clone(),
            replays: self.replays.clone(),
            // Subscribed before the replay reads, so that nothing committed during it is
            // missed when the stream goes live.
            rx: self.hub.subscribe(),
            live_items: 0,
            last: cursor,
            filter,
            live: false,
            pending: VecDeque::new(),
            heartbeat: self.heartbeat,
            next_beat: Instant::now() + self.heartbeat,
            stopping: self.stopping.clone(),
            done: false,
        };
        Ok(Response::new(Box::pin(futures_util::stream::unfold(
            watch,
            Watch::next,
        ))))
    }
}

/// One subscriber's stream.
struct Watch {
    db: Db,
    hub: Hub,
    replays: Arc<Semaphore>,
    rx: broadcast::Receiver<HubItem>,
    /// Items received live since the last replay.
    live_items: u64,
    /// The last position sent or passed: what a checkpoint says.
    last: Cursor,
    filter: Filter,
    live: bool,
    pending: VecDeque<Item>,
    heartbeat: Duration,
    next_beat: Instant,
    stopping: CancellationToken,
    done: bool,
}

type Next = Option<(Result<cpb::WatchIncidentNoticesResponse, Status>, Watch)>;

impl Watch {
    fn change(&self, cursor: Cursor, notice: cpb::IncidentNotice) -> Item {
        Item::Change(cpb::NoticeChange {
            cursor: seal_cursor(self.db.page_tokens(), cursor),
            notice: Some(notice),
        })
    }

    fn checkpoint(&self) -> Item {
        Item::Checkpoint(cpb::Checkpoint {
            cursor: seal_cursor(self.db.page_tokens(), self.last),
            heartbeat_interval: prost_types::Duration::try_from(self.heartbeat).ok(),
            sent_at: Some(to_timestamp(time::OffsetDateTime::now_utc())),
        })
    }

    /// Reads from the database again from `last`: the broadcast went on without this
    /// stream (it subscribed before the hub reached it, or the replay took long).
    fn back_to_replay(&mut self) {
        self.rx = self.rx.resubscribe();
        self.live = false;
    }

    fn yielded(mut self, item: Item) -> Next {
        self.next_beat = Instant::now() + self.heartbeat;
        Some((
            Ok(cpb::WatchIncidentNoticesResponse { item: Some(item) }),
            self,
        ))
    }

    fn failed(mut self, error: ContinuityError) -> Next {
        self.done = true;
        Some((Err(status(error)), self))
    }

    /// The next item of the stream, when the subscriber asks for it.
    async fn next(mut self) -> Next {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return self.yielded(item);
            }
            if self.done {
                return None;
            }
            if self.stopping.is_cancelled() {
                return self.failed(ContinuityError::Stopping);
            }
            if !self.live {
                if let Err(e) = self.replay().await {
                    return self.failed(e.into());
                }
                // A long replay that matches nothing still says it is alive, and how far
                // it has got.
                if self.pending.is_empty() && Instant::now() >= self.next_beat {
                    let beat = self.checkpoint();
                    return self.yielded(beat);
                }
                continue;
            }
            tokio::select! {
                _ = self.stopping.cancelled() => return self.failed(ContinuityError::Stopping),
                received = self.rx.recv() => match received {
                    Ok(item) if item.after() > self.last => self.back_to_replay(),
                    Ok(item) if item.cursor() <= self.last => {}
                    Ok(HubItem::Advanced { cursor, .. }) => {
                        self.live_items += 1;
                        self.last = cursor;
                    }
                    Ok(HubItem::Notice { cursor, notice, .. }) => {
                        self.live_items += 1;
                        self.last = cursor;
                        if self.filter.matches(&notice) {
                            let item = self.change(cursor, (*notice).clone());
                            return self.yielded(item);
                        }
                    }
                    // Behind before it has taken anything live: the replay was long, not
                    // the subscriber slow.
                    Err(broadcast::error::RecvError::Lagged(_)) if self.live_items == 0 => {
                        self.back_to_replay();
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return self.failed(ContinuityError::TooSlow);
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return self.failed(ContinuityError::Stopping);
                    }
                },
                _ = tokio::time::sleep_until(self.next_beat) => {
                    if !self.hub.is_alive() {
                        return self.failed(ContinuityError::Stopping);
                    }
                    let beat = self.checkpoint();
                    return self.yielded(beat);
                }
            }
        }
    }

    /// Reads one batch after `last` into `pending`; at the end of what the database
    /// holds, marks the stream caught up and live.
    async fn replay(&mut self) -> Result<(), StorageError> {
        let batch = {
            let _turn = self
                .replays
                .acquire()
                .await
                .expect("the semaphore is never closed");
            outbox::read_after(self.db.read().await?, self.last, BATCH).await?
        };
        for event in batch.events {
            self.last = event.cursor;
            if !is_notice(&event.event_type) {
                continue;
            }
            match cpb::IncidentNotice::decode(event.payload.as_slice()) {
                Ok(notice) if self.filter.matches(&notice) => {
                    let item = self.change(event.cursor, notice);
                    self.pending.push_back(item);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(error = %error, event_id = %event.cursor.event_id, "a continuity notice in the outbox cannot be decoded; it is not sent");
                }
            }
        }
        if !batch.full {
            self.pending.push_back(Item::CaughtUp(cpb::CaughtUp {
                cursor: seal_cursor(self.db.page_tokens(), self.last),
            }));
            self.live = true;
            self.live_items = 0;
        }
        Ok(())
    }
}
