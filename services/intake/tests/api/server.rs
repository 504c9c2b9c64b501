//! The server stack: health follows the database, calls past the concurrency limit are
//! shed, graceful shutdown finishes in-flight calls, replicas start together, and
//! browsers can call with grpc-web.

use std::{str::FromStr, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use custos_intake::Intake;
use custos_kit::{auth::Role, service::App};
use custos_proto::intake::v1 as pb;
use custos_testing::{Backend, Proxy, TestDatabase};
use http_body_util::{BodyExt, Full};
use prost::Message;
use sqlx::ConnectOptions;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

async fn next_status(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
) -> ServingStatus {
    let message = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("health changes in time");
    ServingStatus::try_from(message.unwrap().unwrap().status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_database() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let target = sqlx::postgres::PgConnectOptions::from_str(database.url()).unwrap();
    let proxy = Proxy::start(
        format!("{}:{}", target.get_host(), target.get_port())
            .parse()
            .unwrap(),
    )
    .await;
    let via_proxy = target
        .clone()
        .host("127.0.0.1")
        .port(proxy.addr.port())
        .to_url_lossy()
        .to_string();
    let mut config = config(&database);
    config.database = database.config_with_url(&via_proxy);
    let intake = TestIntake::start_on(database, config).await;
    let mut health = HealthClient::new(custos_testing::channel(intake.addr()));
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "custos.intake.v1.IntakeService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);

    proxy.cut();
    assert_eq!(next_status(&mut watch).await, ServingStatus::NotServing);
    let err = intake
        .client("alex", &[Role::Reporter])
        .submit_report(named(event_details(), pb::ReportKind::Event))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        !err.message().contains("127.0.0.1"),
        "no internals leak: {}",
        err.message()
    );

    proxy.restore();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    submit_event(&intake, "alex").await;
}

type InFlight =
    tokio::task::JoinHandle<Result<tonic::Response<pb::SubmitReportResponse>, tonic::Status>>;

/// Locks intake's reports table and starts a submission, which then stays in flight
/// (in its handler, waiting on the lock) until the returned transaction ends.
async fn submission_held_in_flight(
    intake: &TestIntake,
) -> (sqlx::Transaction<'static, sqlx::Postgres>, InFlight) {
    let locker = sqlx::PgPool::connect(intake.database.url()).await.unwrap();
    let mut lock = locker.begin().await.unwrap();
    let sql = format!(
        "LOCK TABLE \"{}\".reports IN ACCESS EXCLUSIVE MODE",
        intake.database.schema()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *lock)
        .await
        .unwrap();

    let mut client = intake.client("alex", &[Role::Reporter]);
    let in_flight = tokio::spawn(async move {
        client
            .submit_report(named(event_details(), pb::ReportKind::Event))
            .await
    });
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        tick.tick().await;
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT l.granted AND c.relname = 'reports' AND n.nspname = $1)",
        )
        .bind(intake.database.schema())
        .fetch_one(&locker)
        .await
        .unwrap();
        if waiting {
            return (lock, in_flight);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the submission reached the database"
        );
    }
}

/// Past `max_concurrent_requests` calls in flight, a new call fails at once with
/// RESOURCE_EXHAUSTED rather than queueing; the calls already in flight complete, and
/// the service takes calls again once they have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_concurrency_limit_are_shed() {
    let intake =
        TestIntake::start_with(Backend::Postgres, |c| c.server.max_concurrent_requests = 1).await;
    let (lock, in_flight) = submission_held_in_flight(&intake).await;
    let mut client = intake.client("alex", &[Role::Reporter]);
    let shed = tokio::time::timeout(WAIT, client.list_categories(pb::ListCategoriesRequest {}))
        .await
        .expect("a shed call fails at once")
        .expect_err("the limit is reached");
    assert_eq!(shed.code(), tonic::Code::ResourceExhausted, "{shed:?}");
    assert!(
        shed.message().contains("limit of calls in flight"),
        "{shed:?}"
    );

    lock.commit().await.unwrap();
    in_flight
        .await
        .unwrap()
        .expect("the call in flight completes");
    client
        .list_categories(pb::ListCategoriesRequest {})
        .await
        .expect("calls are taken again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_calls() {
    let intake = TestIntake::start(Backend::Postgres).await;
    let (lock, in_flight) = submission_held_in_flight(&intake).await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let deadline = tokio::time::Instant::now() + WAIT;

    let TestIntake { mut running, .. } = intake;
    running.begin_stop();
    // Once the listener is closed, shutdown is under way; it cannot finish while the
    // call is blocked on the lock.
    loop {
        tick.tick().await;
        if tokio::net::TcpStream::connect(running.addr).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline + WAIT,
            "the listener closed"
        );
    }
    assert!(
        !running.is_finished(),
        "shutdown must wait for the in-flight call"
    );
    lock.commit().await.unwrap();
    let report = in_flight
        .await
        .unwrap()
        .expect("the in-flight call completes")
        .into_inner();
    assert!(report.report.unwrap().reference.starts_with("SIR-"));
    tokio::time::timeout(WAIT, running.stop())
        .await
        .expect("stops once drained")
        .unwrap();
}

fn grpc_web_frame(message: &impl Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.put_u8(0);
    frame.put_u32(body.len() as u32);
    frame.put_slice(&body);
    frame.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_with_grpc_web() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    let intake = TestIntake::start(Backend::Sqlite).await;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!(
        "http://{}/custos.intake.v1.IntakeService/ListCategories",
        intake.addr()
    );

    let preflight = http::Request::options(&uri)
        .header("origin", "https://portal.example.org")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-grpc-web,authorization",
        )
        .body(Full::default())
        .unwrap();
    let response = client.request(preflight).await.unwrap();
    assert!(response.status().is_success());
    assert!(
        response
            .headers()
            .contains_key("access-control-allow-origin")
    );

    let request = http::Request::post(&uri)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", "https://portal.example.org")
        .body(Full::new(grpc_web_frame(&pb::ListCategoriesRequest {})))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web")
    );
    let mut body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.get_u8(), 0, "a data frame first");
    let len = body.get_u32() as usize;
    let categories = pb::ListCategoriesResponse::decode(body.split_to(len))
        .unwrap()
        .categories;
    assert!(categories.iter().any(|c| c.code == "malware_infection"));
    assert_eq!(body.get_u8(), 0x80, "then the trailers");
    let trailers = String::from_utf8_lossy(&body[4..]).to_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let (a, b, c) = tokio::join!(
        App::build::<Intake>(config(&database)),
        App::build::<Intake>(config(&database)),
        App::build::<Intake>(config(&database)),
    );
    let (a, b, c) = (
        a.expect("replica a starts"),
        b.expect("replica b starts"),
        c.expect("replica c starts"),
    );
    let mut conn = a.db().read().await.unwrap();
    let applied: i64 = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(&mut *c).await.unwrap()
    });
    drop(conn);
    let expected = <Intake as custos_kit::service::Service>::migrations()
        .postgres
        .iter()
        .count()
        + 2;
    assert_eq!(
        applied as usize, expected,
        "the kit's and intake's migrations, once each"
    );
    drop((b, c));
    let db = a.db().clone();
    let running = custos_testing::Running::spawn(a.local_addr(), |signal| a.run_until(signal));
    let intake = TestIntake {
        running,
        db,
        database,
    };
    submit_event(&intake, "alex").await;
}

/// The health probe has a connection of its own: with every pooled connection busy (the
/// main pool's and the reads'), the database still reports healthy (a busy pool is load,
/// not an outage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_does_not_depend_on_a_free_pooled_connection() {
    let intake = TestIntake::start_with(Backend::Postgres, |c| {
        c.database.max_connections = 2;
        c.database.max_read_connections = 2;
    })
    .await;
    // Take every connection of both pools (the outbox listener holds one of the main).
    let mut reads = Vec::new();
    while let Ok(Ok(conn)) =
        tokio::time::timeout(Duration::from_millis(500), intake.db.read()).await
    {
        reads.push(conn);
    }
    assert_eq!(reads.len(), 2);
    let mut txs = Vec::new();
    while let Ok(Ok(tx)) = tokio::time::timeout(Duration::from_millis(500), intake.db.begin()).await
    {
        txs.push(tx);
    }
    assert!(!txs.is_empty() && txs.len() <= 2);
    let held = (reads, txs);
    // Through the pool the probe would wait for its acquire timeout and fail.
    tokio::time::timeout(Duration::from_secs(10), intake.db.ping())
        .await
        .expect("the probe answers")
        .expect("healthy, though the pool is busy");
    drop(held);
}

/// Shutdown: NOT_SERVING at once; feed streams go on through the grace period (load
/// balancers stop sending calls meanwhile), and end after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_not_serving_before_ending_streams() {
    use custos_proto::common::v1::{
        SubscribeRequest, event_feed_service_client::EventFeedServiceClient,
    };
    let intake = TestIntake::start_with(Backend::Sqlite, |c| {
        c.server.shutdown_grace_secs = 1;
        c.server.feed_heartbeat_secs = 3600;
    })
    .await;
    let mut health = HealthClient::new(custos_testing::channel(intake.addr()));
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    let mut feed =
        EventFeedServiceClient::new(custos_testing::authed(intake.addr(), "c", &[Role::Service]))
            .subscribe(SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();

    let TestIntake { mut running, .. } = intake;
    running.begin_stop();
    assert_eq!(next_status(&mut watch).await, ServingStatus::NotServing);
    let not_serving = tokio::time::Instant::now();
    let ended = tokio::time::timeout(WAIT, feed.message())
        .await
        .expect("the stream ends after the grace period");
    assert!(!matches!(ended, Ok(Some(_))), "no more items: {ended:?}");
    let open_for = not_serving.elapsed();
    assert!(
        open_for >= Duration::from_millis(900),
        "the stream stayed open through the grace period ({open_for:?})"
    );
    running.stop().await.unwrap();
}

/// PostgreSQL over TLS: `sslmode=require` connects (Debian's server has SSL on with a
/// self-signed certificate) and the connections are encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let url = format!(
        "{}{}sslmode=require",
        database.url(),
        if database.url().contains('?') {
            "&"
        } else {
            "?"
        }
    );
    let mut config = config(&database);
    config.database = database.config_with_url(&url);
    let intake = TestIntake::start_on(database, config).await;
    submit_event(&intake, "alex").await;
    let mut conn = intake.db.read().await.unwrap();
    let encrypted: bool = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetch_one(&mut *c).await.unwrap()
    });
    assert!(encrypted, "the connection uses TLS");
}

/// Migrations are tracked as one set: a migration that was applied and is missing from
/// the build, or was edited since, stops the start with a message saying which.
async fn changed_migrations_stop_the_start(backend: Backend) {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let intake = TestIntake::start(backend).await;
    let TestIntake {
        running, database, ..
    } = intake;
    running.stop().await.unwrap();
    let shipped = <Intake as custos_kit::service::Service>::migrations();
    let leak = |migrations: Vec<Migration>| -> &'static Migrator {
        let mut migrator = Migrator::DEFAULT;
        migrator.migrations = migrations.into();
        Box::leak(Box::new(migrator))
    };
    let tampered = |m: &'static Migrator| -> &'static Migrator {
        leak(
            m.iter()
                .map(|m| {
                    Migration::new(
                        m.version,
                        m.description.clone(),
                        MigrationType::Simple,
                        sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(format!(
                            "{}\n-- edited",
                            m.sql.as_str()
                        ))),
                        false,
                    )
                })
                .collect(),
        )
    };
    let without_first =
        |m: &'static Migrator| -> &'static Migrator { leak(m.iter().skip(1).cloned().collect()) };
    for (case, migrations, expected) in [
        (
            "removed",
            custos_kit::storage::Migrations {
                postgres: without_first(shipped.postgres),
                sqlite: without_first(shipped.sqlite),
            },
            "was applied to this database but is not in this build",
        ),
        (
            "edited",
            custos_kit::storage::Migrations {
                postgres: tampered(shipped.postgres),
                sqlite: tampered(shipped.sqlite),
            },
            "has changed since it was applied",
        ),
    ] {
        let err = custos_kit::storage::Db::connect(&database.config(), "intake", migrations)
            .await
            .expect_err(case)
            .to_string();
        assert!(
            err.contains(expected) && err.contains("1000"),
            "{case}: {err}"
        );
    }
}

custos_testing::on_both_backends!(changed_migrations_stop_the_start);

/// SQLite: a transaction that reads and then writes starts IMMEDIATE. Begun deferred,
/// its write would fail at once (SQLITE_BUSY_SNAPSHOT) if another connection wrote
/// after its read; begun immediate, the other connection waits for it instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_transactions_take_the_write_lock_first() {
    use sqlx::{ConnectOptions, Connection};
    let intake = TestIntake::start(Backend::Sqlite).await;
    let report = submit_event(&intake, "alex").await;
    let mut tx = intake.db.begin().await.unwrap();
    let revision: i32 = custos_kit::with_conn!(&mut tx, c => {
        sqlx::query_scalar("SELECT revision FROM reports WHERE reference = $1").bind(&report.reference).fetch_one(&mut *c).await.unwrap()
    });
    let path = intake
        .database
        .url()
        .trim_start_matches("sqlite://")
        .to_owned();
    let other = tokio::spawn(async move {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE reports SET revision = revision + 10")
            .execute(&mut conn)
            .await
            .expect("the other writer waits, then writes");
        conn.close().await.unwrap();
    });
    custos_kit::with_conn!(&mut tx, c => {
        sqlx::query("UPDATE reports SET revision = $1 + 1 WHERE reference = $2")
            .bind(revision)
            .bind(&report.reference)
            .execute(&mut *c)
            .await
            .expect("the write after the read succeeds");
    });
    tx.commit().await.unwrap();
    other.await.unwrap();
    let mut conn = intake.db.read().await.unwrap();
    let revision: i32 = custos_kit::with_conn!(&mut conn, c => {
        sqlx::query_scalar("SELECT revision FROM reports").fetch_one(&mut *c).await.unwrap()
    });
    assert_eq!(revision, 12, "both writes applied, ours first");
}
