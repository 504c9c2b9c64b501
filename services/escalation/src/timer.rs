//! The timer every replica runs: it takes what is due (deadlines, overdue provider
//! fixes) out of the database in batches and applies each batch in one transaction, so
//! each deadline fires once whichever replica takes it, and a replica that dies mid-way
//! leaves its batch to the others. Time comes from a [`Clock`], so that tests move it.

use std::{sync::Arc, time::Duration as StdDuration};

use custos_kit::storage::{Db, DbTime, StorageError};
use opentelemetry::{
    KeyValue, global,
    metrics::{Counter, Histogram},
};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    directory::Trigger,
    engine::{self, Subject},
    error::EscalationError,
    escalation::{Facts, SubjectKind},
    store,
};

/// Where the timer reads the time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system's clock.
pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// How the timer works.
#[derive(Debug, Clone, Copy)]
pub struct TimerSettings {
    /// Deadlines applied per transaction.
    pub batch: i64,
    /// The longest the timer sleeps before looking again (deadlines another replica
    /// set are seen within this).
    pub poll: StdDuration,
}

struct Metrics {
    fired: Counter<u64>,
    lag: Histogram<f64>,
}

fn metrics() -> Metrics {
    let meter = global::meter("custos.escalation");
    Metrics {
        fired: meter
            .u64_counter("escalation.deadlines.fired")
            .with_description("Deadlines applied, by kind")
            .build(),
        lag: meter
            .f64_histogram("escalation.deadlines.lag")
            .with_unit("s")
            .with_description("From a deadline's due time to its messages being queued")
            .build(),
    }
}

/// Told, after each commit, how late each deadline it applied was (from its due time to
/// the commit that queued its messages).
pub type Observer = Arc<dyn Fn(StdDuration) + Send + Sync>;

/// A running timer: `fired` counts what it has applied (tests wait on it).
#[derive(Clone)]
pub struct Timer {
    db: Db,
    clock: Clock,
    settings: TimerSettings,
    fired: Arc<watch::Sender<u64>>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Timer {
    pub fn new(db: Db, clock: Clock, settings: TimerSettings) -> Self {
        Self {
            db,
            clock,
            settings,
            fired: Arc::new(watch::channel(0).0),
            observer: None,
        }
    }

    /// Also tells `observer` how late each deadline was (the load tool measures with it).
    pub fn observe(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// How many deadlines and overdue fixes this timer has applied so far.
    pub fn fired(&self) -> watch::Receiver<u64> {
        self.fired.subscribe()
    }

    /// Applies one batch of what is due now, in one transaction; returns how many.
    pub async fn run_once(&self) -> Result<usize, EscalationError> {
        self.run_batch(self.settings.batch).await
    }

    async fn run_batch(&self, limit: i64) -> Result<usize, EscalationError> {
        self.apply(limit, true).await
    }

    /// Takes up to `limit` deadlines (and, with `watches`, overdue provider fixes) due
    /// now and applies them in one transaction.
    async fn apply(&self, limit: i64, watches: bool) -> Result<usize, EscalationError> {
        let now = DbTime::new((self.clock)());
        let m = metrics();
        let mut tx = self.db.begin().await?;
        let due = store::take_due(&mut tx, now, limit).await?;
        engine::fire_batch(&mut tx, &due, now).await?;
        let overdue = if watches {
            store::take_overdue(&mut tx, now, limit).await?
        } else {
            Vec::new()
        };
        for w in &overdue {
            // About the weakness reported to the provider (a report may have several),
            // named by its report's reference.
            let subject = Subject {
                kind: SubjectKind::Report,
                id: w.provider_report_id,
                reference: w.reference.clone(),
                facts: Facts::default(),
                anonymous: false,
            };
            engine::open(&mut tx, Trigger::ProviderWeaknessOverdue, &subject, now).await?;
        }
        tx.commit().await?;
        let committed = (self.clock)();
        for d in &due {
            let lag = StdDuration::try_from(committed - d.due_at.get()).unwrap_or_default();
            m.lag.record(lag.as_secs_f64(), &[]);
            if let Some(observe) = &self.observer {
                observe(lag);
            }
            m.fired
                .add(1, &[KeyValue::new("kind", format!("{:?}", d.kind))]);
        }
        let n = due.len() + overdue.len();
        if n > 0 {
            self.fired.send_modify(|c| *c += n as u64);
        }
        Ok(n)
    }

    /// How long to sleep: until the next thing due, at most `poll`.
    async fn idle_for(&self) -> Result<StdDuration, StorageError> {
        let mut conn = self.db.read().await?;
        let next = [
            store::next_due(&mut conn).await?,
            store::next_overdue(&mut conn).await?,
        ]
        .into_iter()
        .flatten()
        .min();
        let now = (self.clock)();
        Ok(match next {
            Some(at) => (at.get() - now)
                .clamp(
                    time::Duration::ZERO,
                    time::Duration::try_from(self.settings.poll).unwrap_or(time::Duration::SECOND),
                )
                .try_into()
                .unwrap_or(self.settings.poll),
            None => self.settings.poll,
        })
    }

    /// Runs until `stopping`: batches back to back while there is a backlog, otherwise
    /// asleep until the next thing is due (at most `poll`).
    pub async fn run(self, stopping: CancellationToken) {
        let mut failures = 0u32;
        while !stopping.is_cancelled() {
            let wait = match self.run_once().await {
                Ok(n) if n as i64 >= self.settings.batch => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    // At least a little: what is due may be held by another replica.
                    self.idle_for()
                        .await
                        .unwrap_or(self.settings.poll)
                        .max(StdDuration::from_millis(20))
                }
                Err(e) if about_a_row(&e) => {
                    tracing::warn!(error = %custos_kit::error::DisplayChain(&e),
                        "a batch of deadlines could not be applied; applying them one at a time to find the one at fault");
                    // One at a time until the culprit is parked (or nothing is due).
                    let mut progress = false;
                    for _ in 0..self.settings.batch {
                        match self.isolate().await {
                            Isolated::Applied => progress = true,
                            Isolated::Parked => {
                                progress = true;
                                break;
                            }
                            Isolated::Nothing => break,
                        }
                    }
                    if progress {
                        failures = 0;
                        continue;
                    }
                    failures += 1;
                    StdDuration::from_millis(200 * u64::from(failures.min(25)))
                }
                Err(e) => {
                    failures += 1;
                    let wait = StdDuration::from_millis(200 * u64::from(failures.min(25)));
                    let e = custos_kit::error::DisplayChain(&e).to_string();
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(error = %e, failures, "applying due deadlines failed; retrying (they stay in the database)");
                    }
                    wait
                }
            };
            tokio::select! {
                () = stopping.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// A failure that belongs to a row being applied (a stored value this build cannot
/// read, an escalation that contradicts its own chain): only such a row is ever parked.
/// Anything else (the database away, full or timing out, a collision) says nothing
/// about the rows, and the batch is retried as it is.
fn about_a_row(e: &EscalationError) -> bool {
    matches!(
        e,
        EscalationError::Corrupt(_) | EscalationError::Storage(StorageError::Corrupt(_))
    )
}

/// What applying one deadline alone came to.
enum Isolated {
    Applied,
    Parked,
    Nothing,
}

impl Timer {
    /// After a batch failed for a reason of its own: applies the earliest due deadline
    /// alone; if that fails too, parks exactly that deadline (parked_deadlines, logged
    /// at ERROR), so that one bad row does not stop every escalation. Whether it made
    /// progress.
    async fn isolate(&self) -> Isolated {
        let now = DbTime::new((self.clock)());
        let attempt = async {
            let mut tx = self.db.begin().await?;
            let Some(d) = store::take_due(&mut tx, now, 1).await?.pop() else {
                return Ok::<_, EscalationError>(None);
            };
            match engine::fire(&mut tx, &d, now).await {
                Ok(()) => {
                    tx.commit().await?;
                    self.fired.send_modify(|c| *c += 1);
                    Ok(Some((d, None)))
                }
                Err(e) => Ok(Some((d, Some(e)))),
            }
        };
        let (d, error) = match attempt.await {
            Ok(Some(outcome)) => outcome,
            Ok(None) | Err(_) => return Isolated::Nothing,
        };
        let Some(error) = error else {
            return Isolated::Applied;
        };
        if !about_a_row(&error) {
            return Isolated::Nothing;
        }
        let text = custos_kit::error::DisplayChain(&error).to_string();
        let park = async {
            let mut tx = self.db.begin().await?;
            let parked = store::park_deadline(&mut tx, &d, &text, now).await?;
            tx.commit().await?;
            Ok::<_, StorageError>(parked)
        };
        match park.await {
            Ok(true) => {
                tracing::error!(escalation_id = %d.escalation_id, kind = ?d.kind, tier = d.tier, error = %text,
                    "a deadline that cannot be applied was parked (parked_deadlines): its escalation will not move on by itself");
                Isolated::Parked
            }
            _ => Isolated::Nothing,
        }
    }
}
