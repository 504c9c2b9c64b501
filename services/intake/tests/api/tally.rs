//! A consumer of intake's feed for tests, built as any service is: a store function that
//! runs in the consumer's transaction, a handler, and a kit `Service`. Its effect is a
//! count per report, which a second application of an event would visibly double.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    pin::Pin,
    sync::{Arc, LazyLock, Mutex},
};

use custos_kit::{
    config::{ConfigError, Validate},
    consumer::{EventHandler, FeedSource, HandlerError},
    service::{BuildError, Context, Service},
    storage::{AsConn, Db, Migrations, StorageError, Tx},
    with_conn,
};
use custos_proto::common::v1::Event;

/// The tally store: records one application of `event` in the caller's transaction.
pub async fn record(tx: &mut Tx, event: &Event, replica: &str) -> Result<(), StorageError> {
    const APPLIED: &str = "INSERT INTO applied (event_id, reference, replica) VALUES ($1, $2, $3)";
    const COUNT: &str = "INSERT INTO tallies (reference, n) VALUES ($1, 1) \
         ON CONFLICT (reference) DO UPDATE SET n = tallies.n + 1";
    with_conn!(tx, c => {
        sqlx::query(APPLIED).bind(&event.event_id).bind(&event.aggregate_reference).bind(replica).execute(&mut *c).await?;
        sqlx::query(COUNT).bind(&event.aggregate_reference).execute(&mut *c).await?;
    });
    Ok(())
}

/// `(reference, n)` of every tally.
pub async fn tallies(db: &Db) -> HashMap<String, i32> {
    let mut conn = db.read().await.unwrap();
    with_conn!(&mut conn, c => {
        sqlx::query_as::<_, (String, i32)>("SELECT reference, n FROM tallies").fetch_all(&mut *c).await.unwrap()
    })
    .into_iter()
    .collect()
}

/// `(seq, event_id, replica)` of every application, in order.
pub async fn applied(mut conn: impl AsConn) -> Vec<(i64, String, String)> {
    with_conn!(&mut conn, c => {
        sqlx::query_as("SELECT seq, event_id, replica FROM applied ORDER BY seq").fetch_all(&mut *c).await.unwrap()
    })
}

pub fn migrations() -> Migrations {
    static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./tests/api/tally/postgres");
    static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./tests/api/tally/sqlite");
    Migrations {
        postgres: &POSTGRES,
        sqlite: &SQLITE,
    }
}

/// How the handler misbehaves, per report reference, as a test sets it.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Fail this many more times, after writing.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Always fail, after writing.
    pub poison: Mutex<HashSet<String>>,
    /// Attempts so far.
    pub attempts: Mutex<HashMap<String, u32>>,
}

impl Behaviour {
    pub fn attempts(&self, reference: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(reference)
            .copied()
            .unwrap_or(0)
    }
}

/// The handler: counts the event through the store, then fails if told to.
pub struct Tally {
    pub replica: String,
    pub behaviour: Arc<Behaviour>,
}

impl EventHandler for Tally {
    fn handle<'a>(
        &'a self,
        tx: &'a mut Tx,
        event: &'a Event,
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let reference = &event.aggregate_reference;
            *self
                .behaviour
                .attempts
                .lock()
                .unwrap()
                .entry(reference.clone())
                .or_default() += 1;
            record(tx, event, &self.replica).await?;
            if self.behaviour.poison.lock().unwrap().contains(reference) {
                return Err(HandlerError::failed(format!(
                    "{reference} is poison to this handler"
                )));
            }
            if let Some(left) = self.behaviour.failures.lock().unwrap().get_mut(reference)
                && *left > 0
            {
                *left -= 1;
                return Err(HandlerError::failed(format!(
                    "{reference} failed on purpose"
                )));
            }
            Ok(())
        })
    }
}

/// A feed source for intake at `addr`, with a service token.
pub fn intake_source(addr: std::net::SocketAddr) -> FeedSource {
    FeedSource {
        channel: custos_testing::channel(addr),
        token: Arc::new(|| custos_testing::token("tally", &[custos_kit::auth::Role::Service])),
    }
}

/// The behaviour of the tally service's handler (one test per process).
pub static BEHAVIOUR: LazyLock<Arc<Behaviour>> = LazyLock::new(Default::default);

/// The tally as a service of its own, consuming intake's feed.
#[derive(Debug)]
pub struct TallyService;

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TallySettings {
    pub intake: Option<std::net::SocketAddr>,
}

impl Validate for TallySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match self.intake {
            Some(_) => Ok(()),
            None => Err(ConfigError::invalid("tally.intake", "is required")),
        }
    }
}

impl Service for TallyService {
    const NAME: &'static str = "tally";
    type Settings = TallySettings;

    fn migrations() -> Migrations {
        migrations()
    }

    async fn build(context: &mut Context, settings: TallySettings) -> Result<(), BuildError> {
        let intake = settings.intake.expect("validated");
        context.consume(
            "tally.intake",
            intake_source(intake),
            Tally {
                replica: "service".into(),
                behaviour: BEHAVIOUR.clone(),
            },
        );
        Ok(())
    }
}
