//! Sending the queued messages: over SMTP (lettre), or, with no SMTP configured, into a
//! mail directory as one readable `.eml` file per message (standalone mode). A message
//! is marked sent only once the server accepted it; a temporary failure is retried with
//! backoff; a permanent one (or too many attempts) marks it failed, records it on the
//! escalation's timeline, and sends the nominee's deputy a copy (one hop: a deputy's copy
//! that fails is not passed on).

use std::{path::PathBuf, sync::Arc, time::Duration as StdDuration};

use custos_kit::storage::{Db, DbTime, StorageError};
use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};
use secrecy::ExposeSecret;
use time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    config::{SmtpSettings, TlsMode},
    error::EscalationError,
    escalation::TimelineKind,
    message::for_deputy,
    store::{self, ClaimedMail, NewMail, TimelineRow},
    timer::Clock,
};

/// Where messages go.
#[derive(Clone)]
pub enum Outlet {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(PathBuf, AsyncFileTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outlet::Smtp(_) => f.write_str("Outlet::Smtp"),
            Outlet::Directory(d, _) => write!(f, "Outlet::Directory({})", d.display()),
        }
    }
}

impl Outlet {
    /// An SMTP outlet as configured.
    pub fn smtp(s: &SmtpSettings) -> Result<Self, String> {
        let host = s.host.as_deref().ok_or("escalation.smtp.host is not set")?;
        let builder = match s.tls {
            TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("escalation.smtp.host: {e}"))?,
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("escalation.smtp.host: {e}"))?,
        };
        let mut builder = builder
            .port(s.port())
            .timeout(Some(StdDuration::from_secs(s.timeout_secs)));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        Ok(Outlet::Smtp(builder.build()))
    }

    /// A mail directory (created if missing).
    pub fn directory(dir: PathBuf) -> Result<Self, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let transport = AsyncFileTransport::<Tokio1Executor>::new(&dir);
        Ok(Outlet::Directory(dir, transport))
    }

    /// Sends one message: `Ok`, or the error and whether it is for good.
    async fn send(&self, message: Message) -> Result<(), (String, bool)> {
        match self {
            Outlet::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| {
                let permanent = e.is_permanent();
                (e.to_string(), permanent)
            }),
            Outlet::Directory(_, t) => t
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| (e.to_string(), false)),
        }
    }
}

/// How the sender works.
#[derive(Debug, Clone, Copy)]
pub struct SenderSettings {
    pub batch: i64,
    /// How long a sender holds the messages it took.
    pub lease: Duration,
    /// The first retry's delay; each next one doubles, up to an hour.
    pub retry_base: Duration,
    /// Attempts before a message is failed for good.
    pub max_attempts: i32,
    pub poll: StdDuration,
}

/// Sends the queue (every replica runs one; claims keep them apart).
#[derive(Clone)]
pub struct Sender {
    db: Db,
    outlet: Outlet,
    from: Mailbox,
    clock: Clock,
    settings: SenderSettings,
    me: Uuid,
    handled: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("outlet", &self.outlet)
            .finish_non_exhaustive()
    }
}

/// What became of one message.
enum Outcome {
    Sent,
    Later(String),
    Failed(String),
}

impl Sender {
    pub fn new(
        db: Db,
        outlet: Outlet,
        from: Mailbox,
        clock: Clock,
        settings: SenderSettings,
    ) -> Self {
        Self {
            db,
            outlet,
            from,
            clock,
            settings,
            me: Uuid::new_v4(),
            handled: Arc::new(watch::channel(0).0),
        }
    }

    /// How many messages this sender has dealt with (sent, delayed or failed).
    pub fn handled(&self) -> watch::Receiver<u64> {
        self.handled.subscribe()
    }

    fn message(&self, m: &ClaimedMail) -> Result<Message, String> {
        let to: Mailbox = m
            .to_address
            .parse()
            .map_err(|e| format!("the address is not usable: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone())
            .message_id(Some(m.message_id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone())
            .map_err(|e| format!("the message cannot be built: {e}"))
    }

    fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1))
            .unwrap_or(0)
            .min(16);
        (self.settings.retry_base * 2_i32.pow(doublings)).min(Duration::hours(1))
    }

    /// Takes one batch of due messages and sends them; returns how many it took.
    pub async fn run_once(&self) -> Result<usize, EscalationError> {
        let now = DbTime::new((self.clock)());
        let until = DbTime::new(now.get() + self.settings.lease);
        let mut tx = self.db.begin().await?;
        let taken = store::claim_mail(&mut tx, self.me, now, until, self.settings.batch).await?;
        tx.commit().await?;
        for m in &taken {
            // Still ours? (A send can outlast a lease: then another sender has it.)
            let renewed = async {
                let until = DbTime::new((self.clock)() + self.settings.lease);
                let mut tx = self.db.begin().await?;
                let held = store::renew_claim(&mut tx, m.id, self.me, until).await?;
                tx.commit().await?;
                Ok::<_, StorageError>(held)
            };
            match renewed.await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Err(e.into()),
            }
            let outcome = match self.message(m) {
                Err(e) => Outcome::Failed(e),
                Ok(message) => match self.outlet.send(message).await {
                    Ok(()) => Outcome::Sent,
                    Err((e, true)) => Outcome::Failed(e),
                    Err((e, false)) if m.attempts >= self.settings.max_attempts => {
                        Outcome::Failed(format!("{e} (after {} attempts)", m.attempts))
                    }
                    Err((e, false)) => Outcome::Later(e),
                },
            };
            // A message whose outcome cannot be recorded stays claimed until its lease
            // runs out and is then tried again (the same Message-ID: delivery is at least
            // once); the rest of the batch goes on.
            if let Err(e) = self.settle(m, outcome).await {
                tracing::error!(mail_id = %m.id, error = %custos_kit::error::DisplayChain(&e),
                    "what became of a message could not be recorded; it will be tried again when its lease runs out");
            }
            self.handled.send_modify(|n| *n += 1);
        }
        Ok(taken.len())
    }

    async fn settle(&self, m: &ClaimedMail, outcome: Outcome) -> Result<(), EscalationError> {
        let now = DbTime::new((self.clock)());
        // About an anonymous report, no time finer than the minute.
        let now = if m.anonymous { now.to_minute() } else { now };
        let mut tx = self.db.begin().await?;
        let held = match &outcome {
            Outcome::Sent => store::mark_sent(&mut tx, m.id, self.me, now).await?,
            Outcome::Later(e) => {
                let at = DbTime::new(now.get() + self.backoff(m.attempts));
                store::retry_mail(&mut tx, m.id, self.me, at, e).await?
            }
            Outcome::Failed(e) => store::mark_failed(&mut tx, m.id, self.me, e).await?,
        };
        if !held {
            // The lease ran out and another sender took it: theirs to settle.
            tracing::warn!(mail_id = %m.id, "a message's lease ran out while it was being sent; another sender has it (it may be sent twice: the Message-ID is the same)");
            return Ok(());
        }
        match &outcome {
            Outcome::Sent => {
                note(
                    &mut tx,
                    m,
                    TimelineKind::MessageSent,
                    now,
                    match self.outlet {
                        Outlet::Smtp(_) => "the mail server accepted it",
                        Outlet::Directory(..) => "written to the mail directory",
                    }
                    .into(),
                )
                .await?;
            }
            Outcome::Later(e) => {
                tracing::warn!(mail_id = %m.id, attempts = m.attempts, error = %e, "a message could not be sent; it will be retried");
            }
            Outcome::Failed(e) => {
                tracing::error!(mail_id = %m.id, escalation_id = %m.escalation_id, error = %e, "a message failed for good");
                note(
                    &mut tx,
                    m,
                    TimelineKind::MessageFailed,
                    now,
                    format!("failed for good: {e}"),
                )
                .await?;
                self.tell_deputy(&mut tx, m, e, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues a copy for the nominee's deputy, if they have an active one (never for a
    /// deputy's own copy).
    async fn tell_deputy(
        &self,
        tx: &mut custos_kit::storage::Tx,
        m: &ClaimedMail,
        error: &str,
        now: DbTime,
    ) -> Result<(), EscalationError> {
        if m.deputy_for.is_some() {
            return Ok(());
        }
        let open = store::escalation(&mut *tx, m.escalation_id)
            .await?
            .is_some_and(|e| e.state == crate::escalation::EscalationState::Open);
        if !open {
            return Ok(());
        }
        let Some(nominee) = store::contact(&mut *tx, m.contact_id).await? else {
            return Ok(());
        };
        let deputy = match nominee.deputy_id {
            Some(id) => store::contact(&mut *tx, id).await?.filter(|d| d.active),
            None => None,
        };
        let Some(deputy) = deputy else {
            tracing::warn!(mail_id = %m.id, "a message failed for good and its nominee has no active deputy");
            return Ok(());
        };
        let (subject, body) = for_deputy(&nominee.display_name, &m.subject, &m.body, error);
        store::queue_mail(
            tx,
            &NewMail {
                id: crate::engine::new_id(m.anonymous),
                escalation_id: m.escalation_id,
                contact_id: deputy.id,
                tier: m.tier,
                to_address: deputy.email.clone(),
                subject,
                body,
                queued_at: now,
                deputy_for: Some(m.id),
                anonymous: m.anonymous,
            },
        )
        .await?;
        let queued = ClaimedMail {
            contact_id: deputy.id,
            ..m.clone()
        };
        note(
            tx,
            &queued,
            TimelineKind::MessageQueued,
            now,
            format!(
                "{} told as {}'s deputy",
                deputy.display_name, nominee.display_name
            ),
        )
        .await
    }

    /// Runs until `stopping`.
    pub async fn run(self, stopping: CancellationToken) {
        let mut failures = 0u32;
        while !stopping.is_cancelled() {
            let wait = match self.run_once().await {
                Ok(n) if n as i64 >= self.settings.batch => continue,
                Ok(_) => {
                    failures = 0;
                    self.idle_for().await.unwrap_or(self.settings.poll)
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::error!(error = %custos_kit::error::DisplayChain(&e), failures,
                            "sending the mail queue failed; retrying (the messages stay queued)");
                    }
                    StdDuration::from_millis(200 * u64::from(failures.min(25)))
                }
            };
            tokio::select! {
                () = stopping.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn idle_for(&self) -> Result<StdDuration, StorageError> {
        let mut conn = self.db.read().await?;
        let next = store::next_mail_due(&mut conn).await?;
        let now = (self.clock)();
        Ok(match next {
            Some(at) => StdDuration::try_from(at.get() - now)
                .unwrap_or_default()
                .min(self.settings.poll),
            None => self.settings.poll,
        })
    }
}

async fn note(
    tx: &mut custos_kit::storage::Tx,
    m: &ClaimedMail,
    kind: TimelineKind,
    at: DbTime,
    detail: String,
) -> Result<(), EscalationError> {
    let sequence = store::take_timeline_sequence(tx, m.escalation_id).await?;
    store::append_timeline(
        tx,
        &TimelineRow {
            escalation_id: m.escalation_id,
            sequence,
            kind,
            at,
            tier: m.tier,
            contact_id: Some(m.contact_id),
            channel: "email".into(),
            detail,
        },
    )
    .await?;
    Ok(())
}
