//! The health probe's own database connection. Probing through the pools would report a
//! busy pool as an unreachable database: under load every replica would leave the load
//! balancer at once. The probe reconnects on its own when its connection fails.

use std::time::Duration;

use sqlx::{
    ConnectOptions, Connection, PgConnection, SqliteConnection, postgres::PgConnectOptions,
    sqlite::SqliteConnectOptions,
};
use tokio::sync::Mutex;

use super::StorageError;

/// Longest a probe waits for a new connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(super) enum Probe {
    Postgres(PgConnectOptions, Mutex<Option<PgConnection>>),
    Sqlite(SqliteConnectOptions, Mutex<Option<SqliteConnection>>),
}

macro_rules! ping {
    ($options:expr, $slot:expr) => {{
        let mut slot = $slot.lock().await;
        if let Some(conn) = slot.as_mut() {
            if conn.ping().await.is_ok() {
                return Ok(());
            }
            // The connection broke: reconnect below, and drop it without a goodbye.
            *slot = None;
        }
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, $options.connect())
            .await
            .map_err(|_| StorageError::Unavailable(sqlx::Error::PoolTimedOut))??;
        conn.ping().await?;
        *slot = Some(conn);
        Ok(())
    }};
}

impl Probe {
    pub(super) fn postgres(options: PgConnectOptions) -> Self {
        Probe::Postgres(options, Mutex::new(None))
    }

    pub(super) fn sqlite(options: SqliteConnectOptions) -> Self {
        Probe::Sqlite(options, Mutex::new(None))
    }

    pub(super) async fn ping(&self) -> Result<(), StorageError> {
        match self {
            Probe::Postgres(options, slot) => ping!(options, slot),
            Probe::Sqlite(options, slot) => ping!(options, slot),
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Probe::Postgres(_, slot) => {
                if let Some(conn) = slot.lock().await.take() {
                    let _ = conn.close().await;
                }
            }
            Probe::Sqlite(_, slot) => {
                if let Some(conn) = slot.lock().await.take() {
                    let _ = conn.close().await;
                }
            }
        }
    }
}
