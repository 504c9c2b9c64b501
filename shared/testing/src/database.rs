//! A fresh database per test: a temporary SQLite file, or a uuid-named schema in the
//! PostgreSQL test database (dropped when the test ends).

use std::str::FromStr;

use custos_kit::config::DatabaseConfig;
use secrecy::SecretString;
use sqlx::{Connection, Executor, PgConnection, postgres::PgConnectOptions};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL test database URL.
pub fn postgres_url() -> String {
    std::env::var("CUSTOS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/custos_test".into())
}

#[derive(Debug)]
pub struct TestDatabase {
    pub backend: Backend,
    url: String,
    schema: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// Panics with a clear message when PostgreSQL is unreachable: tests never skip.
    pub async fn new(backend: Backend) -> Self {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    backend,
                    url,
                    schema,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = postgres_url();
                ensure_database(&url).await;
                Self {
                    backend,
                    url,
                    schema,
                    _dir: None,
                }
            }
        }
    }

    /// Database configuration for the service under test.
    pub fn config(&self) -> DatabaseConfig {
        self.config_with_url(&self.url)
    }

    /// The same database reached through another URL (e.g. a proxy).
    pub fn config_with_url(&self, url: &str) -> DatabaseConfig {
        DatabaseConfig {
            url: SecretString::from(url),
            schema: Some(self.schema.clone()),
            max_connections: 8,
            max_read_connections: 4,
            health_check_secs: 1,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.backend != Backend::Postgres {
            return;
        }
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs outside async code: use a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&url).await.ok()?;
                let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                conn.execute(sqlx::AssertSqlSafe(sql)).await.ok()
            })
        })
        .join();
    }
}

async fn ensure_database(url: &str) {
    let options =
        PgConnectOptions::from_str(url).expect("CUSTOS_TEST_DATABASE_URL is a postgres URL");
    let name = options.get_database().unwrap_or("custos_test").to_owned();
    if PgConnection::connect_with(&options).await.is_ok() {
        return;
    }
    let admin = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for these tests and is unreachable at {url} ({e}). \
             Start it (see README) or set CUSTOS_TEST_DATABASE_URL."
            )
        });
    let sql = format!("CREATE DATABASE \"{name}\"");
    if let Err(e) = conn.execute(sqlx::AssertSqlSafe(sql)).await {
        // Another test process may have created it first.
        let raced = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "42P04" || c == "23505");
        assert!(raced, "cannot create the test database {name}: {e}");
    }
}
