//! The domain's values: what an item is, where it is in custody, and what a chain entry
//! records.

use custos_proto::custody::v1 as pb;
use serde::{Deserialize, Serialize};

custos_kit::wire_enum!(
    /// What an item is. Stored values: never renumber one.
    Kind, pb::EvidenceKind, "FILE, LOG_EXPORT, DEVICE or PAPER_DOCUMENT", {
    File = 1 => File,
    LogExport = 2 => LogExport,
    Device = 3 => Device,
    PaperDocument = 4 => PaperDocument,
});

custos_kit::wire_enum!(
    /// Where an item is in custody. Stored values: never renumber one.
    ItemState, pb::evidence_item::State, "an item state", {
    InCustody = 1 => InCustody,
    Sealed = 2 => Sealed,
    Released = 3 => Released,
    Disposed = 4 => Disposed,
});

custos_kit::wire_enum!(
    /// What a chain entry records. Stored values: never renumber one.
    Action, pb::CustodyAction, "a custody action", {
    Registered = 1 => Registered,
    ContentAdded = 2 => ContentAdded,
    Transferred = 3 => Transferred,
    Accessed = 4 => Accessed,
    Downloaded = 5 => Downloaded,
    Examined = 6 => Examined,
    Sealed = 7 => Sealed,
    Unsealed = 8 => Unsealed,
    Released = 9 => Released,
    Disposed = 10 => Disposed,
    HoldPlaced = 11 => HoldPlaced,
    HoldLifted = 12 => HoldLifted,
    IntegrityFailed = 13 => IntegrityFailed,
    Derived = 14 => Derived,
});

// (The enum is declared by `wire_enum!`, which takes no variant attributes.)
#[allow(clippy::derivable_impls)]
impl Default for ItemState {
    fn default() -> Self {
        ItemState::InCustody
    }
}

impl ItemState {
    /// Whether the item has left custody for good.
    pub fn is_final(self) -> bool {
        matches!(self, ItemState::Released | ItemState::Disposed)
    }
}

/// How an item came into custody (stored as JSON; fixed at registration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collection {
    pub found_at: String,
    pub collected_by: String,
    /// RFC 3339, UTC.
    pub collected_at: String,
    pub time_zone: String,
    pub method: String,
    pub volatility: String,
}

/// A legal hold (stored as JSON while the item is on hold).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub reason: String,
    pub placed_by: String,
    /// RFC 3339, UTC.
    pub placed_at: String,
}

/// Whether `zone` looks like a time zone: an IANA name (`Europe/London`, `UTC`) or a
/// UTC offset (`+01:00`). (The service does not carry the time zone database: the zone
/// is recorded as the collector gave it, for reading local times against.)
pub fn is_time_zone(zone: &str) -> bool {
    let offset = |s: &str| {
        let b = s.as_bytes();
        b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[1..3].iter().all(u8::is_ascii_digit)
            && b[3] == b':'
            && b[4..6].iter().all(u8::is_ascii_digit)
            && s[1..3] <= *"14"
            && s[4..6] < *"60"
    };
    let iana = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.split('/').all(|part| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
            })
    };
    offset(zone) || iana(zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_zones() {
        for ok in [
            "Europe/London",
            "UTC",
            "America/Argentina/Buenos_Aires",
            "+01:00",
            "-05:30",
            "Etc/GMT+5",
        ] {
            assert!(is_time_zone(ok), "{ok}");
        }
        for bad in [
            "",
            "+1:00",
            "+25:00",
            "Europe//London",
            "/London",
            "Europe/Lon don",
            "+01:60",
        ] {
            assert!(!is_time_zone(bad), "{bad}");
        }
    }
}
