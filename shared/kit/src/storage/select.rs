//! Statements built from the filters a caller actually gave, for list calls.
//!
//! One statement with optional parameters (each filter "null, or equal to the column") is
//! planned once by PostgreSQL, generically, as a sequential scan plus a sort, and it stays
//! one as the table grows. A [`Select`] instead holds only the conditions in use, so the planner
//! sees each combination for what it is and can use the index that serves it. SQL
//! fragments are `&'static str` written in the store; values are always bound.

use sqlx::{
    Arguments, FromRow, PgConnection, SqliteConnection,
    error::BoxDynError,
    postgres::{PgArguments, PgRow},
    sqlite::{SqliteArguments, SqliteRow},
};
use uuid::Uuid;

use super::{AsConn, DbEnum, DbTime, StorageError};

/// A value bound to a built statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(Uuid),
    Time(DbTime),
}

impl Value {
    /// A stored enum value.
    pub fn of<E: DbEnum>(value: E) -> Self {
        Value::I16(value.to_db())
    }
}

macro_rules! value_from {
    ($($t:ty => $v:ident),+ $(,)?) => {
        $(impl From<$t> for Value {
            fn from(value: $t) -> Self {
                Value::$v(value.into())
            }
        })+
    };
}

value_from!(bool => Bool, i16 => I16, i32 => I32, i64 => I64, String => Text, &str => Text,
    Vec<u8> => Bytes, Uuid => Uuid, DbTime => Time);

/// A statement under construction: a base `SELECT … FROM …`, the conditions in use
/// (joined with AND), then ordering and limit.
#[derive(Debug, Clone)]
pub struct Select {
    sql: String,
    values: Vec<Value>,
    conditions: usize,
    /// A list condition with more values than [`KEPT_LIST_VALUES`]: its text is one of as
    /// many as there are lengths, so it is not worth keeping prepared.
    one_off: bool,
    /// Its plan is the same whatever its values ([`Select::plan_once`]).
    plan_once: bool,
}

/// The longest list of values (`and_in`, `and_any`) in a statement kept prepared: up to
/// this, a list is a filter's choice of an enum's values, of which there are few
/// lengths; beyond it, typically ids, each length would be a statement of its own and
/// push the lists out of a connection's cache.
const KEPT_LIST_VALUES: usize = 8;

impl Select {
    pub fn new(base: &'static str) -> Self {
        Self {
            sql: base.to_owned(),
            values: Vec::new(),
            conditions: 0,
            one_off: false,
            plan_once: false,
        }
    }

    /// A base that binds values of its own: `$1`…`$n` in `base` are `values`, in order
    /// (e.g. the caller's subject in a column of the select list); the conditions added
    /// later number on from there.
    pub fn with_values(base: &'static str, values: impl IntoIterator<Item = Value>) -> Self {
        Self {
            sql: base.to_owned(),
            values: values.into_iter().collect(),
            conditions: 0,
            one_off: false,
            plan_once: false,
        }
    }

    /// Binds a value and returns its placeholder (`$n`).
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    /// Several statements from one `base`, each built by `build(i, branch)` (typically
    /// the same filters with one enumerated value each), joined with UNION ALL and
    /// wrapped so that `then` and `limit` apply to the whole:
    /// `SELECT * FROM (SELECT * FROM (<b0>) AS b0 UNION ALL …) AS u`. For a list whose
    /// index needs an equality on a column the caller left open: one ordered, limited
    /// index range per value instead of a filtered scan or a sort (PostgreSQL has no
    /// skip scan). Branches are numbered on: their values are bound in order.
    pub fn union_all(
        base: &'static str,
        count: usize,
        mut build: impl FnMut(usize, &mut Select),
    ) -> Select {
        let mut values = Vec::new();
        let mut one_off = false;
        let mut parts = Vec::with_capacity(count);
        for i in 0..count {
            let mut branch = Select {
                sql: base.to_owned(),
                values,
                conditions: 0,
                one_off,
                plan_once: false,
            };
            build(i, &mut branch);
            parts.push(format!("SELECT * FROM ({}) AS b{i}", branch.sql));
            values = branch.values;
            one_off = branch.one_off;
        }
        Select {
            sql: format!("SELECT * FROM ({}) AS u", parts.join(" UNION ALL ")),
            values,
            conditions: 0,
            one_off,
            plan_once: false,
        }
    }

    /// `prefix (this statement) suffix`: this statement, as built so far, becomes a
    /// subquery of another; its values stay bound, in order. For a list that finds its
    /// page's keys first and then reads their rows: the keys come from an index that
    /// holds every filtered column (an index-only scan, no row read to be discarded),
    /// the rows by primary key, only as many as the page holds. `prefix` and `suffix`
    /// bind nothing (no `$n`), and the result is whole: add no condition to it.
    pub fn within(self, prefix: &'static str, suffix: &'static str) -> Select {
        debug_assert!(
            !prefix.contains('$') && !suffix.contains('$'),
            "within() binds no values of its own"
        );
        Select {
            sql: format!("{prefix}({}){suffix}", self.sql),
            values: self.values,
            conditions: 0,
            one_off: self.one_off,
            plan_once: self.plan_once,
        }
    }

    /// Marks a statement whose best plan is the same whatever its values: a lookup by a
    /// unique key, say. It is kept prepared on any connection, and where the session
    /// leaves the choice to PostgreSQL (a transaction, [`super::Db::lookup`]) it is
    /// planned once and that plan reused instead of planned for every call: for a row by
    /// its key, planning costs more than the read. It covers the whole statement: mark
    /// it only when no value bound, before or after, can want another plan.
    pub fn plan_once(&mut self) {
        self.plan_once = true;
    }

    /// Adds a condition: each `?` in it is replaced by the next of `values`.
    pub fn and(&mut self, condition: &'static str, values: impl IntoIterator<Item = Value>) {
        let mut values = values.into_iter();
        let mut out = String::with_capacity(condition.len() + 8);
        for (i, part) in condition.split('?').enumerate() {
            if i > 0 {
                let value = values
                    .next()
                    .expect("a value for every `?` of the condition");
                let placeholder = self.bind(value);
                out.push_str(&placeholder);
            }
            out.push_str(part);
        }
        assert!(
            values.next().is_none(),
            "more values than `?` in `{condition}`"
        );
        self.sql.push_str(if self.conditions == 0 {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(&out);
        self.conditions += 1;
    }

    /// `(condition OR condition …)`, once per value, each `?` bound to its value (a
    /// repeated filter that no `IN` expresses, e.g. `LIKE`); nothing when there are none.
    pub fn and_any(&mut self, condition: &'static str, values: impl IntoIterator<Item = Value>) {
        let parts: Vec<String> = values
            .into_iter()
            .map(|value| {
                let placeholder = self.bind(value);
                condition.replacen('?', &placeholder, 1)
            })
            .collect();
        self.one_off |= parts.len() > KEPT_LIST_VALUES;
        if !parts.is_empty() {
            self.push_condition(&format!("({})", parts.join(" OR ")));
        }
    }

    /// `column = value` when the filter is set.
    pub fn and_eq(&mut self, column: &'static str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            let placeholder = self.bind(value.into());
            self.push_condition(&format!("{column} = {placeholder}"));
        }
    }

    /// `column IN (values…)` when any are given (`repeated` filters OR together).
    pub fn and_in(&mut self, column: &'static str, values: impl IntoIterator<Item = Value>) {
        let placeholders: Vec<String> = values.into_iter().map(|v| self.bind(v)).collect();
        self.one_off |= placeholders.len() > KEPT_LIST_VALUES;
        match placeholders.len() {
            0 => {}
            1 => self.push_condition(&format!("{column} = {}", placeholders[0])),
            _ => self.push_condition(&format!("{column} IN ({})", placeholders.join(", "))),
        }
    }

    fn push_condition(&mut self, condition: &str) {
        self.sql.push_str(if self.conditions == 0 {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(condition);
        self.conditions += 1;
    }

    /// Appends the rest: `ORDER BY …`.
    pub fn then(&mut self, sql: &'static str) {
        self.sql.push(' ');
        self.sql.push_str(sql);
    }

    /// `LIMIT n`.
    pub fn limit(&mut self, n: i64) {
        let placeholder = self.bind(Value::I64(n));
        self.sql.push_str(" LIMIT ");
        self.sql.push_str(&placeholder);
    }

    /// The statement as built (for tests and plans).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// Runs the statement and decodes each row as `R`, planned for the values given (a
    /// rare category and a common one want different plans) unless marked
    /// [`Select::plan_once`]. It is kept prepared only on a connection that plans every
    /// call for its values anyway
    /// ([`AsConn::plans_each_call`]: a read connection), where it then costs one round
    /// trip instead of two; elsewhere a kept statement would switch to one generic plan
    /// for all values after five runs. A statement with a long list of values is never
    /// kept (see [`KEPT_LIST_VALUES`]). A statement marked [`Select::plan_once`] is kept
    /// on any connection.
    pub async fn fetch_all<R>(&self, mut conn: impl AsConn) -> Result<Vec<R>, StorageError>
    where
        R: for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin,
    {
        let sql = sqlx::AssertSqlSafe(self.sql.clone());
        let prepared = (conn.plans_each_call() || self.plan_once) && !self.one_off;
        Ok(crate::with_conn!(&mut conn, c => {
            let arguments = c.arguments(&self.values).map_err(sqlx::Error::Encode)?;
            sqlx::query_as_with(sql, arguments).persistent(prepared).fetch_all(&mut *c).await?
        }))
    }
}

impl Select {
    /// Runs the statement for its effect (an `UPDATE` or `DELETE` built from conditions
    /// the same way) and returns the number of rows it touched; not kept prepared.
    pub async fn execute(&self, mut conn: impl AsConn) -> Result<u64, StorageError> {
        let sql = sqlx::AssertSqlSafe(self.sql.clone());
        Ok(crate::with_conn!(&mut conn, c => {
            let arguments = c.arguments(&self.values).map_err(sqlx::Error::Encode)?;
            sqlx::query_with(sql, arguments).persistent(false).execute(&mut *c).await?.rows_affected()
        }))
    }
}

/// Binds [`Value`]s as one backend's arguments.
trait Bind {
    type Arguments;

    fn arguments(&self, values: &[Value]) -> Result<Self::Arguments, BoxDynError>;
}

macro_rules! impl_bind {
    ($conn:ty, $args:ty) => {
        impl Bind for $conn {
            type Arguments = $args;

            fn arguments(&self, values: &[Value]) -> Result<$args, BoxDynError> {
                let mut args = <$args>::default();
                for value in values {
                    match value {
                        Value::Bool(v) => args.add(*v)?,
                        Value::I16(v) => args.add(*v)?,
                        Value::I32(v) => args.add(*v)?,
                        Value::I64(v) => args.add(*v)?,
                        Value::Text(v) => args.add(v.clone())?,
                        Value::Bytes(v) => args.add(v.clone())?,
                        Value::Uuid(v) => args.add(*v)?,
                        Value::Time(v) => args.add(*v)?,
                    }
                }
                Ok(args)
            }
        }
    };
}

impl_bind!(PgConnection, PgArguments);
impl_bind!(SqliteConnection, SqliteArguments);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_given_reach_the_statement() {
        let mut s = Select::new("SELECT id FROM reports");
        s.and_eq("kind", None::<i16>);
        s.and_eq("category", Some("malware"));
        s.and_in("status", [Value::I16(1), Value::I16(3)]);
        s.and_in("medium", []);
        s.and(
            "(submitted_at, id) < (?, ?)",
            [Value::I64(5), Value::I64(6)],
        );
        s.then("ORDER BY submitted_at DESC, id DESC");
        s.limit(51);
        assert_eq!(
            s.sql(),
            "SELECT id FROM reports WHERE category = $1 AND status IN ($2, $3) \
             AND (submitted_at, id) < ($4, $5) ORDER BY submitted_at DESC, id DESC LIMIT $6"
        );
        assert_eq!(s.values().len(), 6);
    }

    #[test]
    fn only_a_statement_with_short_lists_is_kept_prepared() {
        let ids = |n: usize| (0..n).map(|i| Value::I64(i as i64)).collect::<Vec<_>>();
        let mut s = Select::new("SELECT id FROM t");
        s.and_in("kind", ids(KEPT_LIST_VALUES));
        s.and_any("tag LIKE ?", ids(2));
        assert!(!s.one_off, "an enum's values");
        s.and_in("id", ids(KEPT_LIST_VALUES + 1));
        assert!(s.one_off, "a list of ids");
        let mut any = Select::new("SELECT id FROM t");
        any.and_any("tag LIKE ?", ids(KEPT_LIST_VALUES + 1));
        assert!(any.one_off);
        let union = Select::union_all("SELECT id FROM t", 2, |i, b| {
            b.and_in("id", ids(if i == 0 { KEPT_LIST_VALUES + 1 } else { 1 }));
        });
        assert!(union.one_off, "one long branch makes the whole one-off");
    }

    #[test]
    fn a_base_with_values_numbers_the_conditions_on() {
        let mut s = Select::with_values(
            "SELECT id, EXISTS (SELECT 1 FROM acl WHERE subject = $1) AS listed FROM t",
            [Value::from("olga")],
        );
        s.and_eq("id", Some(7_i64));
        assert_eq!(
            s.sql(),
            "SELECT id, EXISTS (SELECT 1 FROM acl WHERE subject = $1) AS listed FROM t \
             WHERE id = $2"
        );
        assert_eq!(s.values(), [Value::from("olga"), Value::I64(7)]);
    }

    #[test]
    fn any_of_a_condition_is_one_disjunction() {
        let mut s = Select::new("SELECT id FROM t");
        s.and_any("tags LIKE ?", []);
        s.and_eq("kind", Some(1_i16));
        s.and_any("tags LIKE ?", [Value::from("%a%"), Value::from("%b%")]);
        assert_eq!(
            s.sql(),
            "SELECT id FROM t WHERE kind = $1 AND (tags LIKE $2 OR tags LIKE $3)"
        );
    }

    #[test]
    fn keys_first_then_rows() {
        let ids = |n: usize| (0..n).map(|i| Value::I64(i as i64)).collect::<Vec<_>>();
        let mut keys = Select::new("SELECT id FROM t");
        keys.and_eq("owner", Some(7_i64));
        keys.and_eq("kind", Some(2_i16));
        keys.and_in("tag", ids(KEPT_LIST_VALUES + 1));
        keys.then("ORDER BY at DESC");
        keys.limit(3);
        let rows = keys.within(
            "SELECT t.* FROM t JOIN ",
            " AS k ON k.id = t.id ORDER BY t.at DESC",
        );
        assert!(rows.sql().starts_with(
            "SELECT t.* FROM t JOIN (SELECT id FROM t WHERE owner = $1 AND kind = $2 AND tag IN ("
        ));
        assert!(
            rows.sql()
                .ends_with("ORDER BY at DESC LIMIT $12) AS k ON k.id = t.id ORDER BY t.at DESC"),
            "{}",
            rows.sql()
        );
        assert_eq!(rows.values().len(), 12);
        assert!(
            rows.one_off,
            "the subquery's long list is the whole statement's"
        );
    }

    #[test]
    fn branches_of_a_union_number_their_values_on() {
        let mut u = Select::union_all("SELECT id FROM t", 2, |i, b| {
            b.and_eq("kind", Some(Value::I16(i as i16 + 1)));
            b.and_eq("category", Some("x"));
            b.then("ORDER BY at");
            b.limit(3);
        });
        u.then("ORDER BY at");
        u.limit(3);
        assert_eq!(
            u.sql(),
            "SELECT * FROM (SELECT * FROM (SELECT id FROM t WHERE kind = $1 AND category = $2 \
             ORDER BY at LIMIT $3) AS b0 UNION ALL SELECT * FROM (SELECT id FROM t WHERE \
             kind = $4 AND category = $5 ORDER BY at LIMIT $6) AS b1) AS u ORDER BY at LIMIT $7"
        );
        assert_eq!(u.values().len(), 7);
    }
}
