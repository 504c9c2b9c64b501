//! Wakes feed readers across replicas on PostgreSQL: local commits are announced with
//! NOTIFY (coalesced), and other replicas' commits arrive by LISTEN. The kit's `App`
//! runs it for every service; no service starts it by hand.

use crate::storage::{Db, Pools};

/// Shortest time between two notifications to other replicas.
const NOTIFY_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// On PostgreSQL, tells other replicas' feed readers about local commits (NOTIFY, sent
/// outside the write transactions so that commits are not serialised on it) and wakes
/// local readers when other replicas commit (LISTEN). Runs until `shutdown`.
pub async fn relay_notifications(db: Db, shutdown: tokio_util::sync::CancellationToken) {
    let Pools::Postgres { pool, .. } = db.pools() else {
        return;
    };
    let pool = pool.clone();
    let channel = format!("custos_outbox_{}", db.schema());
    let notifier = {
        let (pool, channel, shutdown) = (pool.clone(), channel.clone(), shutdown.clone());
        let mut local = db.local_commits();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = local.changed() => if changed.is_err() { return },
                }
                if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                    .bind(&channel)
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(%error, "outbox notify failed; other replicas fall back to heartbeat re-reads");
                }
                // At most one NOTIFY per interval: commits meanwhile share the next one.
                // NOTIFY commits serialise on PostgreSQL's notification queue, and local
                // readers were already woken in-process.
                tokio::time::sleep(NOTIFY_INTERVAL).await;
            }
        }
    };
    let listener = async move {
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(error) => {
                    tracing::warn!(%error, "outbox listener cannot connect; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(error) = listener.listen(&channel).await {
                tracing::warn!(%error, "outbox LISTEN failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            // Anything may have committed while we were not listening.
            db.wake_outbox_readers();
            loop {
                match listener.recv().await {
                    Ok(_) => db.wake_outbox_readers(),
                    Err(error) => {
                        tracing::warn!(%error, "outbox listener lost its connection; reconnecting");
                        db.wake_outbox_readers();
                        break;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = notifier => {},
        _ = listener => {},
        _ = shutdown.cancelled() => {},
    }
}
