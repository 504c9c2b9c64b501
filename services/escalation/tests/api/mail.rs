//! Messages sent for real: to an SMTP server the test starts (mailin-embedded, on
//! 127.0.0.1:0) and reads, marked sent only once it accepted them; a busy server is
//! retried later, a bounce fails for good and tells the deputy; with no SMTP, one
//! readable file per message in the mail directory.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use custos_escalation::{
    Escalation, EscalationSettings,
    config::{SmtpSettings, TlsMode},
    directory::{ListKind, Trigger},
    engine::{self, Subject},
    escalation::{Facts, SubjectKind},
    mail::{Outlet, Sender, SenderSettings},
    store::{self, ContactRow, MAIL_FAILED, MAIL_SENT},
};
use custos_kit::{
    auth::Role,
    service::Service,
    storage::{Db, DbTime},
};
use custos_proto::escalation::v1 as pb;
use custos_testing::{Backend, TestDatabase, on_both_backends};
use mailin_embedded::{Handler, Response, Server, response};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::common::{NOWHERE, TestEscalation, eventually, people, settings};

/// One message as the server received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// A real SMTP server: refuses `bounce…` addresses for good (550), defers each `busy…`
/// address once (451), and keeps what it accepts.
#[derive(Clone, Default)]
struct Catcher {
    inbox: Arc<Mutex<Vec<Received>>>,
    deferred: Arc<Mutex<HashSet<String>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Catcher {
    fn rcpt(&mut self, to: &str) -> Response {
        if to.contains("bounce") {
            return response::NO_MAILBOX;
        }
        if to.contains("busy") && self.deferred.lock().unwrap().insert(to.to_owned()) {
            return response::INTERNAL_ERROR;
        }
        self.to.push(to.to_owned());
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.inbox.lock().unwrap().push(Received {
            to: std::mem::take(&mut self.to),
            data: String::from_utf8_lossy(&std::mem::take(&mut self.data)).into_owned(),
        });
        response::OK
    }
}

/// Starts the server; returns its port and inbox.
fn smtp_server() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let catcher = Catcher::default();
    let inbox = catcher.inbox.clone();
    let mut server = Server::new(catcher);
    server.with_name("smtp.test").with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("the test SMTP server stopped: {e}");
        }
    });
    (port, inbox)
}

fn smtp(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        tls: TlsMode::None,
        ..SmtpSettings::default()
    }
}

async fn open_high(db: &Db, reference: &str) -> Uuid {
    let subject = Subject {
        kind: SubjectKind::Incident,
        id: Uuid::now_v7(),
        reference: reference.into(),
        facts: Facts {
            category: "malware".into(),
            level: Some(3),
            ..Facts::default()
        },
        anonymous: false,
    };
    let mut tx = db.begin().await.unwrap();
    let id = engine::open(&mut tx, Trigger::IncidentHigh, &subject, DbTime::now())
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn high_medium_list(svc: &TestEscalation) {
    let mut dir = svc.owner();
    let ids = people(&mut dir, "Responder", 2).await;
    dir.set_contact_list(pb::SetContactListRequest {
        kind: pb::ContactListKind::HighMedium as i32,
        contact_ids: ids,
        revision: 0,
    })
    .await
    .unwrap();
}

async fn messages_reach_a_real_smtp_server_and_are_marked_sent(backend: Backend) {
    let (port, inbox) = smtp_server();
    let svc = TestEscalation::start_with(
        backend,
        EscalationSettings {
            smtp: smtp(port),
            ..settings(NOWHERE, NOWHERE)
        },
        |_| {},
    )
    .await;
    high_medium_list(&svc).await;
    let id = open_high(&svc.db, "INC-2026-000101").await;
    eventually("both messages arrive", async || {
        inbox.lock().unwrap().len() == 2
    })
    .await;
    let got = inbox.lock().unwrap().clone();
    let mut to: Vec<String> = got.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["responder.1@example.org", "responder.2@example.org"]);
    let data = &got[0].data;
    assert!(data.contains("From: custos <custos@example.org>"), "{data}");
    assert!(
        data.contains("Subject: [custos] INC-2026-000101: a high incident: action required"),
        "{data}"
    );
    assert!(data.contains("Message-ID: <"), "{data}");
    assert!(
        data.contains(&format!("custos escalation ack {id}")),
        "{data}"
    );
    let mut sent = Vec::new();
    eventually("both are marked sent", async || {
        let mut conn = svc.db.read().await.unwrap();
        sent = store::mail_of(&mut conn, id).await.unwrap();
        sent.iter().all(|m| m.state == MAIL_SENT)
    })
    .await;
    assert!(sent.iter().all(|m| m.attempts == 1));
    let timeline = svc
        .escalations("advisor", &[Role::SecurityAdvisor])
        .list_escalation_timeline(pb::ListEscalationTimelineRequest {
            escalation_id: id.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let sent_entries = timeline
        .iter()
        .filter(|t| t.kind == pb::timeline_entry::Kind::MessageSent as i32)
        .count();
    assert_eq!(sent_entries, 2);
}

/// A contact written straight into the store.
async fn person(db: &Db, name: &str, email: &str, deputy: Option<Uuid>) -> Uuid {
    let now = DbTime::now();
    let row = ContactRow {
        id: Uuid::now_v7(),
        display_name: name.into(),
        job_title: String::new(),
        email: email.into(),
        deputy_id: deputy,
        token_subject: Some(name.to_lowercase()),
        active: true,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.begin().await.unwrap();
    store::insert_contact(&mut tx, &row).await.unwrap();
    tx.commit().await.unwrap();
    row.id
}

async fn a_busy_server_is_retried_and_a_bounce_tells_the_deputy(backend: Backend) {
    let (port, inbox) = smtp_server();
    let database = TestDatabase::new(backend).await;
    let db = Db::connect(
        &database.config(),
        <Escalation as Service>::NAME,
        <Escalation as Service>::migrations(),
    )
    .await
    .unwrap();
    let deputy = person(&db, "Deputy", "deputy@example.org", None).await;
    let busy = person(&db, "Busy", "busy@example.org", None).await;
    let bounce = person(&db, "Bounce", "bounce@example.org", Some(deputy)).await;
    let mut tx = db.begin().await.unwrap();
    store::set_list(
        &mut tx,
        ListKind::HighMedium,
        0,
        &[busy, bounce],
        DbTime::now(),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();
    let id = open_high(&db, "INC-2026-000102").await;

    let now = Arc::new(Mutex::new(OffsetDateTime::now_utc()));
    let clock_now = now.clone();
    let sender = Sender::new(
        db.clone(),
        Outlet::smtp(&smtp(port)).unwrap(),
        "custos <custos@example.org>".parse().unwrap(),
        Arc::new(move || *clock_now.lock().unwrap()),
        SenderSettings {
            batch: 10,
            lease: Duration::minutes(2),
            retry_base: Duration::seconds(30),
            max_attempts: 5,
            poll: std::time::Duration::from_millis(50),
        },
    );
    assert_eq!(sender.run_once().await.unwrap(), 2, "both taken");
    let state = async || {
        let mut conn = db.read().await.unwrap();
        store::mail_of(&mut conn, id).await.unwrap()
    };
    let after_first = state().await;
    let of = |rows: &[store::MailRow], c: Uuid| {
        rows.iter().find(|m| m.contact_id == c).cloned().unwrap()
    };
    let b = of(&after_first, busy);
    assert_eq!((b.state, b.attempts), (1, 1), "deferred: still queued");
    assert!(b.last_error.is_some());
    let f = of(&after_first, bounce);
    assert_eq!(f.state, MAIL_FAILED, "a 550 is for good");
    let d = of(&after_first, deputy);
    assert_eq!(d.deputy_for, Some(f.id), "the deputy is told instead");
    assert!(
        d.subject
            .starts_with("[custos] For Bounce, whose mail failed"),
        "{}",
        d.subject
    );

    // The deputy's copy goes now; the busy one's retry is not due for 30 s.
    assert_eq!(sender.run_once().await.unwrap(), 1);
    assert_eq!(inbox.lock().unwrap().len(), 1);
    *now.lock().unwrap() += Duration::seconds(31);
    assert_eq!(sender.run_once().await.unwrap(), 1, "the retry");
    let rows = state().await;
    assert_eq!(
        (of(&rows, busy).state, of(&rows, busy).attempts),
        (MAIL_SENT, 2)
    );
    assert_eq!(of(&rows, deputy).state, MAIL_SENT);
    let mut to: Vec<String> = inbox
        .lock()
        .unwrap()
        .iter()
        .flat_map(|m| m.to.clone())
        .collect();
    to.sort();
    assert_eq!(to, ["busy@example.org", "deputy@example.org"]);
    let mut conn = db.read().await.unwrap();
    let kinds: Vec<_> = store::timeline(&mut conn, id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.kind)
        .collect();
    use custos_escalation::escalation::TimelineKind as K;
    assert_eq!(kinds.iter().filter(|k| **k == K::MessageFailed).count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == K::MessageSent).count(), 2);
    drop(conn);
    db.close().await;
}

async fn without_smtp_messages_are_files_in_the_mail_directory(backend: Backend) {
    let svc = TestEscalation::start(backend).await;
    high_medium_list(&svc).await;
    let id = open_high(&svc.db, "INC-2026-000103").await;
    let dir = svc.mail_dir.path().join("mail");
    let mut files = Vec::new();
    eventually("two files in the mail directory", async || {
        files = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.len() == 2
    })
    .await;
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(text.contains("Subject: [custos] INC-2026-000103"), "{text}");
    assert!(
        text.contains(&format!("custos escalation ack {id}")),
        "{text}"
    );
}

on_both_backends!(
    messages_reach_a_real_smtp_server_and_are_marked_sent,
    a_busy_server_is_retried_and_a_bounce_tells_the_deputy,
    without_smtp_messages_are_files_in_the_mail_directory,
);
