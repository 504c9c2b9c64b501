//! One reader of the outbox per process: it reads each new event once, in commit order,
//! and broadcasts the continuity notices (and how far it has read) to every subscriber's
//! stream. A thousand subscribers cost one query per change, not a thousand; a slow
//! subscriber falls behind on its own receiver and never delays the reader or the
//! others.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use custos_kit::{
    outbox::{self, Cursor},
    storage::{Db, StorageError},
};
use custos_proto::continuity::v1 as cpb;
use prost::{Message, Name};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events read per query.
const BATCH: i64 = 256;
/// Wait before reading again when an event is held back behind an open transaction.
const HELD_BACK_RETRY: Duration = Duration::from_millis(20);
/// Read again after this long even without a signal (a signal lost to a dropped
/// notification connection costs at most this much).
const SAFETY_POLL: Duration = Duration::from_secs(2);
/// Wait after the database failed before reading again.
const RETRY: Duration = Duration::from_secs(1);
/// WARN (and again every so long) while notices wait behind an open transaction.
const HELD_BACK_WARNING: Duration = Duration::from_secs(30);

/// What the hub broadcasts, in outbox order. Each item says where the hub stood before
/// it (`after`): a subscriber whose own position is behind that has missed something
/// (it subscribed before the hub got there, or fell behind) and reads it again from the
/// database.
#[derive(Debug, Clone)]
pub enum HubItem {
    /// A notice, at its cursor.
    Notice {
        after: Cursor,
        cursor: Cursor,
        notice: Arc<cpb::IncidentNotice>,
    },
    /// The hub has read up to `cursor` (events that are not notices): a cursor subscribers
    /// may resume from.
    Advanced { after: Cursor, cursor: Cursor },
}

impl HubItem {
    pub fn cursor(&self) -> Cursor {
        match self {
            HubItem::Notice { cursor, .. } | HubItem::Advanced { cursor, .. } => *cursor,
        }
    }

    pub fn after(&self) -> Cursor {
        match self {
            HubItem::Notice { after, .. } | HubItem::Advanced { after, .. } => *after,
        }
    }
}

/// The process's notice reader and its broadcast.
#[derive(Debug, Clone)]
pub struct Hub {
    sender: broadcast::Sender<HubItem>,
    /// False once the reader has stopped (the server is stopping, or it failed): streams
    /// end rather than send checkpoints that never move.
    alive: Arc<AtomicBool>,
}

/// Marks the hub dead however its reader ends (a panic included).
struct Alive(Arc<AtomicBool>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Hub {
    /// Reads the outbox's head, then starts the reader from there (so that no watch can
    /// be served before the hub knows where it starts); it stops with `stopping`.
    /// `capacity` items may wait for the slowest live subscriber before it is cut off.
    pub async fn start(
        db: Db,
        capacity: usize,
        stopping: CancellationToken,
    ) -> Result<Self, StorageError> {
        let head = outbox::head(db.read().await?).await?;
        let (sender, _) = broadcast::channel(capacity);
        let alive = Arc::new(AtomicBool::new(true));
        tokio::spawn(read(
            db,
            head,
            sender.clone(),
            stopping,
            Alive(alive.clone()),
        ));
        Ok(Hub { sender, alive })
    }

    /// A receiver of everything broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubItem> {
        self.sender.subscribe()
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

/// Whether an outbox event is a continuity notice.
pub fn is_notice(event_type: &str) -> bool {
    event_type == cpb::IncidentNotice::full_name()
}

async fn read(
    db: Db,
    mut position: Cursor,
    sender: broadcast::Sender<HubItem>,
    stopping: CancellationToken,
    _alive: Alive,
) {
    let mut held_since: Option<Instant> = None;
    let mut changes = db.outbox_changes();
    loop {
        // Mark the signal seen before reading, so that a commit after the read wakes us.
        changes.borrow_and_update();
        let batch = match db.read().await {
            Ok(conn) => outbox::read_after(conn, position, BATCH).await,
            Err(error) => Err(error),
        };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(error = %custos_kit::error::DisplayChain(&error), "the continuity feed could not read the outbox; retrying");
                tokio::select! {
                    _ = stopping.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => continue,
                }
            }
        };
        // Where the last item sent left subscribers.
        let mut announced = position;
        for event in batch.events {
            position = event.cursor;
            if !is_notice(&event.event_type) {
                continue;
            }
            match cpb::IncidentNotice::decode(event.payload.as_slice()) {
                Ok(notice) => {
                    // No receiver is not an error: nobody is subscribed.
                    let _ = sender.send(HubItem::Notice {
                        after: announced,
                        cursor: position,
                        notice: Arc::new(notice),
                    });
                    announced = position;
                }
                Err(error) => {
                    tracing::error!(error = %error, event_id = %event.cursor.event_id, "a continuity notice in the outbox cannot be decoded; it is not sent");
                }
            }
        }
        if announced != position {
            let _ = sender.send(HubItem::Advanced {
                after: announced,
                cursor: position,
            });
        }
        if batch.held_back {
            let since = *held_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= HELD_BACK_WARNING {
                tracing::warn!(
                    waited_secs = since.elapsed().as_secs(),
                    "continuity notices are held back behind an open transaction elsewhere \
                     in the PostgreSQL cluster; subscribers get them once it ends"
                );
                held_since = Some(Instant::now());
            }
        } else {
            held_since = None;
        }
        if batch.full {
            continue;
        }
        let wait = if batch.held_back {
            HELD_BACK_RETRY
        } else {
            SAFETY_POLL
        };
        tokio::select! {
            _ = stopping.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
