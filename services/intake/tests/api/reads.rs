//! The kit's reads and read audit, on intake's store: reads outside a transaction have
//! connections of their own, planned for each call's values; a call's audit entry names
//! all its targets at once.

use custos_intake::store::{self, ListFilter};
use custos_kit::{
    audit,
    auth::{Principal, Role},
    storage::{AsConn, Conn, Read, Tx},
};
use custos_testing::{Backend, on_both_backends};
use std::time::Duration;

use crate::store_contract::{begin, new_report, read, start, submission};

fn desk() -> Principal {
    Principal {
        subject: "desk".into(),
        roles: [Role::Helpdesk].into(),
    }
}

/// A setting of a PostgreSQL connection.
async fn setting(conn: &mut impl AsConn, name: &'static str) -> String {
    let Conn::Postgres(c) = conn.conn() else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_scalar("SELECT current_setting($1)")
        .bind(name)
        .fetch_one(&mut *c)
        .await
        .unwrap()
}

/// How often the statement listing report summaries, kept prepared on a PostgreSQL
/// connection, has been planned for its values (custom) and generically; `None` if it is
/// not kept. (This query itself is not kept, nor would its text match.)
async fn list_statement_plans(conn: &mut impl AsConn) -> Option<(i64, i64)> {
    let Conn::Postgres(c) = conn.conn() else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_as(
        "SELECT custom_plans, generic_plans FROM pg_prepared_statements \
         WHERE starts_with(statement, 'SELECT id, reference, kind, status, category, medium')",
    )
    .persistent(false)
    .fetch_optional(&mut *c)
    .await
    .unwrap()
}

/// On PostgreSQL a read connection keeps a built statement prepared (one round trip a
/// call) and is set to plan it for each call's values; a transaction's connection keeps
/// the planner's default and does not keep a built statement. Reads have connections of
/// their own: with every one of them taken, a transaction still begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_are_prepared_planned_per_call_and_pooled_apart() {
    let (intake, store) = start(Backend::Postgres).await;
    let r = new_report(custos_intake::report::Kind::Event, true);
    store
        .submit(submission(&r, None, time::OffsetDateTime::now_utc()))
        .await
        .unwrap();
    let filter = ListFilter {
        category: Some("equipment_theft_or_loss".into()),
        ..ListFilter::default()
    };

    let mut reader = read(&store).await;
    assert_eq!(
        setting(&mut reader, "plan_cache_mode").await,
        "force_custom_plan"
    );
    assert_eq!(list_statement_plans(&mut reader).await, None);
    // More calls than PostgreSQL plans for their values before it would consider a
    // generic plan (five).
    for _ in 0..7 {
        let listed = store::list_summaries(&mut reader, &filter, None, 10)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
    }
    assert_eq!(list_statement_plans(&mut reader).await, Some((7, 0)));

    let mut tx: Tx = begin(&store).await;
    assert_eq!(setting(&mut tx, "plan_cache_mode").await, "auto");
    let listed = store::list_summaries(&mut tx, &filter, None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(list_statement_plans(&mut tx).await, None);
    drop((tx, reader));

    // Every read connection taken (four in the tests' configuration): the main pool
    // still serves.
    let mut held: Vec<Read> = Vec::new();
    for _ in 0..4 {
        held.push(intake.db.read().await.unwrap());
    }
    let tx = begin(&store).await;
    drop(tx);
    let fifth = tokio::time::timeout(Duration::from_millis(300), intake.db.read()).await;
    assert!(fifth.is_err(), "a fifth read waits for one of the four");
    held.pop();
    intake.db.read().await.unwrap();
}

/// A call's targets are audited together: each target's entries name the call, in the
/// order made, whether recorded by the audit writer or in a change's transaction. On
/// PostgreSQL one call is one row, however many targets it read.
async fn a_call_is_one_audit_entry_for_all_its_targets(backend: Backend) {
    let (_intake, store) = start(backend).await;
    let db = store.db();
    // Ids pass through JSON on PostgreSQL: one with a quote, a comma and more.
    let listed: Vec<String> = ["report-0", "report-\"1',{é}", "report-2"]
        .map(String::from)
        .to_vec();
    db.audit(&desk(), "report.list", "report", &listed)
        .await
        .unwrap();
    db.audit(&desk(), "report.read", "report", &listed[1..2])
        .await
        .unwrap();
    let mut tx = begin(&store).await;
    audit::record(&mut tx, &desk(), "report.amend", "report", &listed[1..3])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.audit(&desk(), "report.list", "report", &[])
        .await
        .unwrap();

    let mut c = read(&store).await;
    let entry = |action: &str| ("desk".to_owned(), action.to_owned());
    assert_eq!(
        audit::entries(&mut c, "report-0").await.unwrap(),
        [entry("report.list")]
    );
    assert_eq!(
        audit::entries(&mut c, &listed[1]).await.unwrap(),
        [
            entry("report.list"),
            entry("report.read"),
            entry("report.amend")
        ]
    );
    assert_eq!(
        audit::entries(&mut c, "report-2").await.unwrap(),
        [entry("report.list"), entry("report.amend")]
    );
    assert!(audit::entries(&mut c, "report-").await.unwrap().is_empty());

    let rows: i64 = custos_kit::with_conn!(&mut c, c => {
        sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&mut *c).await.unwrap()
    });
    let expected = match backend {
        Backend::Postgres => 3,
        Backend::Sqlite => 6,
    };
    assert_eq!(
        rows, expected,
        "rows: one per call (PostgreSQL), per target (SQLite)"
    );

    if backend == Backend::Postgres {
        // A row as the release before migration 0003 writes it (a replica not yet
        // updated, or a row kept from before) is found too.
        let Conn::Postgres(pg) = c.conn() else {
            unreachable!()
        };
        sqlx::query(
            "INSERT INTO audit_log (id, at, actor, roles, action, target_type, target_id) \
             VALUES ($1, now(), 'desk', 'helpdesk', 'report.read', 'report', 'report-0')",
        )
        .bind(uuid::Uuid::now_v7())
        .execute(&mut *pg)
        .await
        .unwrap();
        assert_eq!(
            audit::entries(&mut c, "report-0").await.unwrap(),
            [entry("report.list"), entry("report.read")]
        );
    }
}

on_both_backends!(a_call_is_one_audit_entry_for_all_its_targets);
