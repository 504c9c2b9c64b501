//! Feed cursors: opaque, versioned positions that name the event they stand on.
//!
//! A position alone cannot tell histories apart: after a database is restored, moved to
//! another cluster or recovered to a point in time, transaction ids and identity values
//! start again from lower numbers, and new events take positions that a subscriber has
//! already passed. Silently resuming there would skip them. So a cursor carries the
//! epoch and position of its event and the event's id, and a feed accepts a cursor only
//! if it still holds that very event at that position. Anything else is refused with
//! FAILED_PRECONDITION / `CURSOR_EXPIRED`, and the consumer stops and says so.

use std::{cmp::Ordering, fmt};

use data_encoding::BASE64URL_NOPAD;
use uuid::Uuid;

use crate::{
    storage::{AsConn, Dialect, StorageError},
    with_conn,
};

/// A position in a feed and the id of the event at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub epoch: i64,
    pub txid: i64,
    pub id: i64,
    pub event_id: Uuid,
}

/// The first byte of an encoded cursor.
const VERSION: u8 = 1;

impl Cursor {
    /// Before the first event (the empty string on the wire).
    pub const START: Cursor = Cursor {
        epoch: -1,
        txid: -1,
        id: -1,
        event_id: Uuid::nil(),
    };

    pub fn is_start(&self) -> bool {
        *self == Cursor::START
    }

    /// Parses a cursor a feed issued; the empty string is the start of the feed.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        if text.is_empty() {
            return Ok(Cursor::START);
        }
        let bad = || "is not a cursor issued by this feed".to_owned();
        let bytes = BASE64URL_NOPAD.decode(text.as_bytes()).map_err(|_| bad())?;
        if bytes.len() != 41 || bytes[0] != VERSION {
            return Err(bad());
        }
        let int = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let cursor = Cursor {
            epoch: int(1),
            txid: int(9),
            id: int(17),
            event_id: Uuid::from_slice(&bytes[25..41]).map_err(|_| bad())?,
        };
        if cursor.epoch < 0 || cursor.txid < 0 || cursor.id < 0 {
            return Err(bad());
        }
        Ok(cursor)
    }

    fn position(&self) -> (i64, i64, i64) {
        (self.epoch, self.txid, self.id)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_start() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(41);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.epoch.to_be_bytes());
        bytes.extend_from_slice(&self.txid.to_be_bytes());
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(self.event_id.as_bytes());
        f.write_str(&BASE64URL_NOPAD.encode(&bytes))
    }
}

impl PartialOrd for Cursor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cursor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.position().cmp(&other.position())
    }
}

/// Why a feed refuses a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The position holds another event: the feed's database now holds another history.
    AnotherEvent,
    /// The position lies beyond anything the feed holds: its database was restored to an
    /// earlier point, or the cursor comes from another feed.
    BeyondTheFeed,
    /// The feed holds events after the position but not its event.
    Missing,
}

impl Mismatch {
    /// What happened, for the subscriber's error and the consumer's log.
    pub fn explain(self) -> &'static str {
        match self {
            Mismatch::AnotherEvent => {
                "the event this cursor stands on is not the one this feed holds at that \
                 position: the feed's database now holds another history (restored, \
                 recovered to a point in time, or moved)"
            }
            Mismatch::BeyondTheFeed => {
                "this cursor lies beyond every event this feed holds: the feed's database \
                 was restored to an earlier point, or the cursor belongs to another feed"
            }
            Mismatch::Missing => {
                "the event this cursor stands on is no longer in this feed: the feed's \
                 database holds another history"
            }
        }
    }
}

const AT: &str = "SELECT event_id FROM outbox WHERE epoch = $1 AND txid = $2 AND id = $3";
const LAST_POSTGRES: &str =
    "SELECT epoch, txid, id FROM outbox ORDER BY epoch DESC, txid DESC, id DESC LIMIT 1";
const LAST_SQLITE: &str = "SELECT epoch, txid, id FROM outbox ORDER BY id DESC LIMIT 1";

/// Checks that the feed still holds the event `cursor` stands on.
pub async fn check(
    mut conn: impl AsConn,
    cursor: Cursor,
) -> Result<Option<Mismatch>, StorageError> {
    if cursor.is_start() {
        return Ok(None);
    }
    let (at, last): (Option<Uuid>, Option<(i64, i64, i64)>) = with_conn!(&mut conn, c => {
        let at = sqlx::query_scalar(AT)
            .bind(cursor.epoch)
            .bind(cursor.txid)
            .bind(cursor.id)
            .fetch_optional(&mut *c)
            .await?;
        let last = if at.is_none() {
            sqlx::query_as(c.pick(LAST_POSTGRES, LAST_SQLITE)).fetch_optional(&mut *c).await?
        } else {
            None
        };
        (at, last)
    });
    Ok(match at {
        Some(id) if id == cursor.event_id => None,
        Some(_) => Some(Mismatch::AnotherEvent),
        None if last.is_none_or(|last| cursor.position() > last) => Some(Mismatch::BeyondTheFeed),
        None => Some(Mismatch::Missing),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_opaque() {
        let cursor = Cursor {
            epoch: 2,
            txid: 123_456,
            id: 42,
            event_id: Uuid::now_v7(),
        };
        let text = cursor.to_string();
        assert!(!text.contains("123456"), "{text}");
        assert_eq!(Cursor::parse(&text), Ok(cursor));
        assert_eq!(Cursor::parse(""), Ok(Cursor::START));
        assert_eq!(Cursor::START.to_string(), "");
        for bad in ["123.45", "AAAA", &text[1..]] {
            assert!(Cursor::parse(bad).is_err(), "{bad}");
        }
    }
}
