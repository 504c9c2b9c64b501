//! Everything a service's database holds, as text, for tests that prove something was
//! never stored.

use custos_kit::{
    storage::{Db, Dialect},
    with_conn,
};
use sqlx::Row;

/// The names of every table of the service's schema (found by asking the database, so
/// that a table added later is included).
pub async fn table_names(db: &Db) -> Vec<String> {
    let mut conn = db.read().await.expect("a read connection");
    with_conn!(&mut conn, c => {
        let sql = c.pick(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
            "SELECT name FROM sqlite_master WHERE type = 'table'",
        );
        sqlx::query_scalar(sql).fetch_all(&mut *c).await.expect("list tables")
    })
}

/// Every text and blob value of every table of the service's schema, one per line.
pub async fn dump_tables(db: &Db) -> String {
    let tables = table_names(db).await;
    let mut conn = db.read().await.expect("a read connection");
    let mut out = String::new();
    for table in tables {
        let sql = format!("SELECT * FROM \"{table}\"");
        let values: Vec<String> = with_conn!(&mut conn, c => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *c).await.expect("read a table");
            rows.iter()
                .flat_map(|row| {
                    (0..row.len()).map(move |i| {
                        row.try_get::<String, _>(i)
                            .or_else(|_| row.try_get::<Vec<u8>, _>(i).map(|b| String::from_utf8_lossy(&b).into_owned()))
                            .unwrap_or_default()
                    })
                })
                .collect()
        });
        out.push_str(&values.join("\n"));
        out.push('\n');
    }
    out
}
