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
