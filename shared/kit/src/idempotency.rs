//! Idempotency keys for creates and non-idempotent verbs (API.md, AIP-155). The client
//! sends a random key per operation and reuses it on retry; the key is scoped to the
//! caller and the method. The first call claims the key in its own transaction and
//! stores its response there; a retry gets that response again, and a key sent with a
//! different request is INVALID_ARGUMENT / `IDEMPOTENCY_KEY_REUSED` (never
//! ALREADY_EXISTS, which retrying clients read as success). The fingerprint is taken
//! over the request's validated values, not over its encoding, which is not canonical.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::{
    error::Violations,
    storage::{DbTime, StorageError, Tx},
    with_conn,
};

/// Checks a key's shape: 16 to 128 visible ASCII characters (a UUID will do).
pub fn check(v: &mut Violations, field: &str, key: &str, required: bool) {
    if key.is_empty() {
        if required {
            v.add(
                field,
                "is required: send a random UUID for each new request, and the same one when \
                 you retry it",
            );
        }
    } else if !(16..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
        v.add(
            field,
            "must be 16 to 128 visible ASCII characters (a UUID will do)",
        );
    }
}

/// The field violation that goes with `IDEMPOTENCY_KEY_REUSED`.
pub fn reused_violation() -> &'static [crate::error::FieldViolation] {
    static REUSED: std::sync::LazyLock<[crate::error::FieldViolation; 1]> =
        std::sync::LazyLock::new(|| {
            [crate::error::FieldViolation {
                field: "idempotency_key".into(),
                description: "was already used for a different request: send a new key for a \
                              new request"
                    .into(),
            }]
        });
    REUSED.as_slice()
}

/// A fingerprint of a request's validated values (anything with a stable `Debug` form:
/// the domain types a handler parsed the request into).
pub fn fingerprint(values: &impl std::fmt::Debug) -> Vec<u8> {
    Sha256::new()
        .chain_update(b"custos request v1\0")
        .chain_update(format!("{values:?}"))
        .finalize()
        .to_vec()
}

/// A key, hashed with its scope (the caller) and method.
#[derive(Debug, Clone)]
pub struct Key {
    hash: Vec<u8>,
    method: &'static str,
}

impl Key {
    /// `scope` is who calls (a token's subject, or what stands for an anonymous caller).
    pub fn new(scope: &str, method: &'static str, key: &str) -> Self {
        let hash = Sha256::new()
            .chain_update(b"custos idempotency v1\0")
            .chain_update(scope.as_bytes())
            .chain_update(b"\0")
            .chain_update(method.as_bytes())
            .chain_update(b"\0")
            .chain_update(key.as_bytes())
            .finalize()
            .to_vec();
        Self { hash, method }
    }
}

/// What claiming a key found.
#[derive(Debug)]
pub enum Claim {
    /// The key is new: do the work, then [`complete`] in the same transaction.
    New(Pending),
    /// The key was used for this very request: return this response (encoded).
    Replay(Vec<u8>),
}

/// A claimed key awaiting its response.
#[derive(Debug)]
#[must_use = "complete the claim with the response, in the same transaction"]
pub struct Pending {
    key: Key,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("idempotency_key was already used for a different request")]
    Reused,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Claims `key` for a request with `fingerprint`. A concurrent first call with the same
/// key waits for the other's transaction (the key's row is unique) and then replays it.
pub async fn claim(tx: &mut Tx, key: &Key, fingerprint: &[u8]) -> Result<Claim, IdempotencyError> {
    const INSERT: &str = "INSERT INTO idempotency_keys (key_hash, method, fingerprint, response, \
         created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_hash) DO NOTHING";
    const EXISTING: &str = "SELECT fingerprint, response FROM idempotency_keys WHERE key_hash = $1";
    let empty: &[u8] = &[];
    /// The stored `(fingerprint, response)` of a key.
    type Stored = Option<(Vec<u8>, Vec<u8>)>;
    let (inserted, existing): (u64, Stored) = with_conn!(tx, c => {
        let inserted = sqlx::query(INSERT)
            .bind(&key.hash)
            .bind(key.method)
            .bind(fingerprint)
            .bind(empty)
            // To the minute: enough to expire keys, and no finer a date for what an
            // anonymous caller did.
            .bind(DbTime::now().to_minute())
            .execute(&mut *c)
            .await
            .map_err(StorageError::from)?
            .rows_affected();
        let existing = if inserted == 0 {
            sqlx::query_as(EXISTING).bind(&key.hash).fetch_optional(&mut *c).await.map_err(StorageError::from)?
        } else {
            None
        };
        (inserted, existing)
    });
    match existing {
        _ if inserted == 1 => Ok(Claim::New(Pending { key: key.clone() })),
        Some((stored, _)) if stored != fingerprint => Err(IdempotencyError::Reused),
        Some((_, response)) => Ok(Claim::Replay(response)),
        None => Err(StorageError::Corrupt("an idempotency key vanished".into()).into()),
    }
}

/// Stores the response of a claimed key (in the claiming transaction).
pub async fn complete(
    tx: &mut Tx,
    pending: Pending,
    response: &impl Message,
) -> Result<(), StorageError> {
    const SQL: &str = "UPDATE idempotency_keys SET response = $2 WHERE key_hash = $1";
    with_conn!(tx, c => {
        sqlx::query(SQL).bind(&pending.key.hash).bind(response.encode_to_vec()).execute(&mut *c).await?;
    });
    Ok(())
}
