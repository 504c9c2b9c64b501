//! The kit's reads, on intake's store: reads outside a transaction have connections of
//! their own, planned for each call's values; lookups by key keep their plans, on a
//! capped share of the main pool.

use custos_intake::store::{self, ListFilter};
use custos_kit::storage::{AsConn, Conn, Read, Select, Tx, Value};
use custos_testing::Backend;
use std::time::Duration;

use crate::store_contract::{begin, new_report, read, start, submission};

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
/// not kept.
async fn list_statement_plans(conn: &mut impl AsConn) -> Option<(i64, i64)> {
    plans(conn, "SELECT id, reference, kind, status, category, medium")
        .await
        .first()
        .copied()
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
    drop(tx);

    // A list of an enum's few values is kept; a list of ids, as long as it happens to
    // be, is not (each length would be another statement in the cache).
    for n in [2, 9] {
        let mut select = Select::new("SELECT id FROM reports");
        select.and_in("kind", (1..=n).map(Value::I16));
        let rows: Vec<(uuid::Uuid,)> = select.fetch_all(&mut reader).await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    let Conn::Postgres(c) = reader.conn() else {
        unreachable!()
    };
    let kept: Vec<String> = sqlx::query_scalar(
        "SELECT statement FROM pg_prepared_statements \
         WHERE starts_with(statement, 'SELECT id FROM reports WHERE kind IN')",
    )
    .persistent(false)
    .fetch_all(&mut *c)
    .await
    .unwrap();
    assert_eq!(kept, ["SELECT id FROM reports WHERE kind IN ($1, $2)"]);
    drop(reader);

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

/// How often the statements starting `prefix`, kept prepared on this connection, have
/// been planned for their values (custom) and generically. (This query itself is not
/// kept, nor would its text match.)
async fn plans(conn: &mut impl AsConn, prefix: &str) -> Vec<(i64, i64)> {
    let Conn::Postgres(c) = conn.conn() else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_as(
        "SELECT custom_plans, generic_plans FROM pg_prepared_statements \
         WHERE starts_with(statement, $1)",
    )
    .bind(prefix)
    .persistent(false)
    .fetch_all(&mut *c)
    .await
    .unwrap()
}

/// A lookup connection (PostgreSQL: from the main pool, so it is there with every read
/// connection taken) leaves planning to PostgreSQL: a statement whose plan does not
/// depend on its values (`plan_once`) is kept and, after PostgreSQL's five plans for
/// values, planned no more; a list (not marked) is not kept there. On a read connection
/// the marked statement is kept too, still planned per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lookups_are_planned_once() {
    let (intake, store) = start(Backend::Postgres).await;
    let report = new_report(custos_intake::report::Kind::Event, true);
    let s = submission(&report, None, time::OffsetDateTime::now_utc());
    let id = s.id;
    store.submit(s).await.unwrap();
    let by_id = || {
        let mut select = Select::new("SELECT id FROM reports");
        select.and("id = ?", [id.into()]);
        select.plan_once();
        select
    };
    let list = || {
        let mut select = Select::new("SELECT id FROM reports");
        select.and("kind = ?", [Value::I16(1)]);
        select
    };

    let mut held: Vec<Read> = Vec::new();
    for _ in 0..4 {
        held.push(intake.db.read().await.unwrap());
    }
    let mut lookup = tokio::time::timeout(Duration::from_millis(300), intake.db.lookup())
        .await
        .expect("a lookup does not wait for the read connections")
        .unwrap();
    assert_eq!(setting(&mut lookup, "plan_cache_mode").await, "auto");
    for _ in 0..7 {
        let rows: Vec<(uuid::Uuid,)> = by_id().fetch_all(&mut lookup).await.unwrap();
        assert_eq!(rows, [(id,)]);
        let rows: Vec<(uuid::Uuid,)> = list().fetch_all(&mut lookup).await.unwrap();
        assert_eq!(rows, [(id,)]);
    }
    assert_eq!(
        plans(&mut lookup, "SELECT id FROM reports WHERE id =").await,
        [(5, 2)]
    );
    assert_eq!(
        plans(&mut lookup, "SELECT id FROM reports WHERE kind =").await,
        []
    );
    drop(lookup);

    let mut reader = held.pop().unwrap();
    for _ in 0..7 {
        let rows: Vec<(uuid::Uuid,)> = by_id().fetch_all(&mut reader).await.unwrap();
        assert_eq!(rows, [(id,)]);
    }
    assert_eq!(
        plans(&mut reader, "SELECT id FROM reports WHERE id =").await,
        [(7, 0)]
    );
    drop(reader);
    drop(held);

    // Lookups hold at most as many main-pool connections as there are read
    // connections (four here): a fifth waits, and a transaction still begins.
    let mut lookups: Vec<Read> = Vec::new();
    for _ in 0..4 {
        lookups.push(intake.db.lookup().await.unwrap());
    }
    let fifth = tokio::time::timeout(Duration::from_millis(300), intake.db.lookup()).await;
    assert!(fifth.is_err(), "a fifth lookup waits for one of the four");
    let tx = begin(&store).await;
    drop(tx);
    lookups.pop();
    intake.db.lookup().await.unwrap();
}
