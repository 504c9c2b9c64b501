//! `deadlines`: escalation's timers under a burst. Seeds `--count` open escalations on
//! PostgreSQL, each with its first tier's deadline due at a random moment of one minute,
//! then runs `--replicas` timers, each on its own connection pool as a replica would be
//! (in this process: the timer's code is the service's own), and reports the firing lag
//! (from each deadline's due time to the commit that queued its messages) and whether
//! every deadline fired exactly once (counted in the database afterwards).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use custos_escalation::{
    Escalation,
    directory::{Policy, Tier},
    store::{self, ContactRow},
    timer::{Timer, TimerSettings, system_clock},
};
use custos_kit::{
    config::DatabaseConfig,
    service::Service,
    storage::{AsConn, Conn, Db, DbTime},
};
use hdrhistogram::Histogram;
use sqlx::AssertSqlSafe;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct DeadlinesArgs {
    /// PostgreSQL (a schema of its own is created in it, and dropped after).
    #[arg(long, env = "CUSTOS_BENCH_DATABASE_URL")]
    database_url: String,
    /// Escalations, each with one deadline in the minute.
    #[arg(long, default_value_t = 100_000)]
    count: u32,
    /// Timers running at once, each with its own pool.
    #[arg(long, default_value_t = 3)]
    replicas: u32,
    /// Connections of each replica's pool.
    #[arg(long, default_value_t = 4)]
    connections: u32,
    /// Deadlines a timer applies per transaction (the service's default).
    #[arg(long, default_value_t = 200)]
    batch: i64,
    /// Seconds between the end of seeding and the first deadline.
    #[arg(long, default_value_t = 5)]
    lead: u64,
    #[arg(long)]
    json: bool,
}

async fn db(url: &str, schema: &str, connections: u32) -> Result<Db, String> {
    let config = DatabaseConfig {
        url: url.to_owned().into(),
        schema: Some(schema.to_owned()),
        max_connections: connections,
        ..DatabaseConfig::default()
    };
    Db::connect(
        &config,
        <Escalation as Service>::NAME,
        <Escalation as Service>::migrations(),
    )
    .await
    .map_err(|e| format!("cannot connect: {}", custos_kit::error::DisplayChain(&e)))
}

async fn person(db: &Db, name: &str) -> Result<Uuid, String> {
    let now = DbTime::now();
    let row = ContactRow {
        id: Uuid::now_v7(),
        display_name: name.into(),
        job_title: String::new(),
        email: format!("{}@example.org", name.to_lowercase()),
        deputy_id: None,
        token_subject: Some(name.to_lowercase()),
        active: true,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    store::insert_contact(&mut tx, &row)
        .await
        .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(row.id)
}

/// `n` escalations at their first tier (two nominees told), each with that tier's
/// deadline (1 hour away for now) and a second tier of two more.
async fn seed(db: &Db, schema: &str, n: u32) -> Result<(), String> {
    let [a, b, c, d] = [
        person(db, "First1").await?,
        person(db, "First2").await?,
        person(db, "Second1").await?,
        person(db, "Second2").await?,
    ];
    let chain = Policy {
        tiers: vec![
            Tier {
                contacts: vec![a, b],
                lists: vec![],
                deadline_secs: 1800,
                reminder_before_secs: 0,
            },
            Tier {
                contacts: vec![c, d],
                lists: vec![],
                deadline_secs: 3600,
                reminder_before_secs: 0,
            },
        ],
        single_accountable: false,
        repeat_secs: 3600,
    };
    let chain = serde_json::to_string(&chain).map_err(|e| e.to_string())?;
    let facts = r#"{"category":"malware","level":3,"personal":false,"paper":false,"service_affecting":false}"#;
    let statements = [
        format!(
            "INSERT INTO {schema}.escalations (id, trigger, subject_kind, subject_id, reference, facts, \
             state, chain, policy_revision, tier_count, current_tier, next_deadline_at, exhausted, \
             opened_at, ended_at, stopped_reason, revision, timeline_sequence, anonymous) \
             SELECT gen_random_uuid(), 4, 2, gen_random_uuid(), 'INC-2026-' || lpad(g::text, 7, '0'), \
             '{facts}', 1, '{chain}', 1, 2, 1, now() + interval '1 hour', false, now(), NULL, '', 1, 2, false \
             FROM generate_series(1, {n}) g"
        ),
        format!(
            "INSERT INTO {schema}.escalation_tiers (escalation_id, tier, reached_at, deadline_at) \
             SELECT id, 1, opened_at, next_deadline_at FROM {schema}.escalations"
        ),
        format!(
            "INSERT INTO {schema}.escalation_nominees (escalation_id, tier, contact_id, display_name, \
             notified_at, missed_deadline) SELECT e.id, 1, c.id, c.display_name, e.opened_at, false \
             FROM {schema}.escalations e CROSS JOIN {schema}.contacts c WHERE c.id IN ('{a}', '{b}')"
        ),
        format!(
            "INSERT INTO {schema}.escalation_timeline (escalation_id, sequence, kind, at, tier, channel, detail) \
             SELECT id, s, CASE s WHEN 1 THEN 1 ELSE 2 END, opened_at, s - 1, '', 'seeded' \
             FROM {schema}.escalations CROSS JOIN generate_series(1, 2) s"
        ),
        format!(
            "INSERT INTO {schema}.deadlines (id, escalation_id, kind, tier, due_at) \
             SELECT gen_random_uuid(), id, 2, 1, next_deadline_at FROM {schema}.escalations"
        ),
        format!("ANALYZE {schema}.escalations, {schema}.deadlines, {schema}.escalation_nominees"),
    ];
    run(db, &statements).await
}

async fn run(db: &Db, statements: &[String]) -> Result<(), String> {
    let mut tx = db.begin().await.map_err(|e| e.to_string())?;
    let Conn::Postgres(c) = tx.conn() else {
        return Err("this benchmark runs on PostgreSQL".into());
    };
    for s in statements {
        sqlx::raw_sql(AssertSqlSafe(s.clone()))
            .execute(&mut *c)
            .await
            .map_err(|e| format!("{e}: {s}"))?;
    }
    tx.commit().await.map_err(|e| e.to_string())
}

async fn count(db: &Db, sql: &str) -> Result<i64, String> {
    let mut conn = db.read().await.map_err(|e| e.to_string())?;
    let Conn::Postgres(c) = conn.conn() else {
        return Err("this benchmark runs on PostgreSQL".into());
    };
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *c)
        .await
        .map_err(|e| format!("{e}: {sql}"))
}

pub async fn deadlines(args: DeadlinesArgs) -> Result<(), String> {
    let schema = format!("bench_deadlines_{}", Uuid::new_v4().simple());
    let admin = db(&args.database_url, &schema, 4).await?;
    let started = Instant::now();
    seed(&admin, &schema, args.count).await?;
    eprintln!(
        "seeded {} escalations in {:.1} s",
        args.count,
        started.elapsed().as_secs_f64()
    );

    let lags = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds"),
    ));
    // Deadlines fired so far, by any replica (each replica's timer says so after commit).
    let (done, mut done_rx) = tokio::sync::watch::channel(0u64);
    let done = Arc::new(done);
    let stop = CancellationToken::new();
    let mut timers = Vec::new();
    let mut fired = Vec::new();
    for _ in 0..args.replicas {
        let replica = db(&args.database_url, &schema, args.connections).await?;
        let lags = lags.clone();
        let done = done.clone();
        let timer = Timer::new(
            replica,
            system_clock(),
            TimerSettings {
                batch: args.batch,
                poll: Duration::from_millis(500),
            },
        )
        .observe(Arc::new(move |lag| {
            let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1);
            lags.lock().expect("lags").record(micros).ok();
            done.send_modify(|n| *n += 1);
        }));
        fired.push(timer.fired());
        timers.push(tokio::spawn(timer.run(stop.clone())));
    }
    // Every deadline due at a random moment of one minute, starting `lead` seconds on.
    run(&admin, &[
        format!(
            "UPDATE {schema}.deadlines SET due_at = now() + interval '{} seconds' + \
             (random() * 60000)::int * interval '1 millisecond'",
            args.lead
        ),
        format!("UPDATE {schema}.escalations e SET next_deadline_at = d.due_at FROM {schema}.deadlines d WHERE d.escalation_id = e.id"),
    ])
    .await?;
    let total = u64::from(args.count);
    // Until every deadline has fired, or two minutes past the window (the report then
    // shows what did not).
    let give_up = Duration::from_secs(args.lead + 60 + 120);
    if tokio::time::timeout(give_up, done_rx.wait_for(|n| *n >= total))
        .await
        .is_err()
    {
        eprintln!("not every deadline fired within {} s", give_up.as_secs());
    }
    stop.cancel();
    for t in timers {
        t.await.map_err(|e| e.to_string())?;
    }
    let per_replica: Vec<u64> = fired.iter().map(|f| *f.borrow()).collect();
    let missed = count(
        &admin,
        &format!("SELECT count(*) FROM {schema}.escalation_timeline WHERE kind = 8"),
    )
    .await?;
    let twice = count(&admin, &format!(
        "SELECT count(*) FROM (SELECT escalation_id FROM {schema}.escalation_timeline WHERE kind = 8 \
         GROUP BY escalation_id HAVING count(*) > 1) x"
    ))
    .await?;
    let second_tier = count(
        &admin,
        &format!("SELECT count(*) FROM {schema}.escalations WHERE current_tier = 2"),
    )
    .await?;
    let mails = count(&admin, &format!("SELECT count(*) FROM {schema}.mail_queue")).await?;
    let pending = count(
        &admin,
        &format!("SELECT count(*) FROM {schema}.deadlines WHERE tier = 1"),
    )
    .await?;
    let h = lags.lock().expect("lags").clone();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let report = serde_json::json!({
        "deadlines": args.count,
        "replicas": args.replicas,
        "fired_per_replica": per_replica,
        "deadline_missed_entries": missed,
        "escalations_fired_twice": twice,
        "escalations_at_second_tier": second_tier,
        "messages_queued": mails,
        "first_tier_deadlines_left": pending,
        "lag_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": h.max() as f64 / 1000.0},
        // Every deadline taken (deleted) once, by one transaction: the replicas' counts add
        // up to the deadlines, each escalation moved once, and none is left.
        "exactly_once": per_replica.iter().sum::<u64>() == u64::from(args.count)
            && missed == i64::from(args.count) && twice == 0 && pending == 0
            && second_tier == i64::from(args.count) && mails == 2 * i64::from(args.count),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    }
    run(&admin, &[format!("DROP SCHEMA {schema} CASCADE")]).await?;
    Ok(())
}
