//! `DbTime`: a UTC instant stored as `timestamptz` on PostgreSQL and as fixed-width
//! ISO-8601 text (`2026-11-28T09:15:00.123456Z`) on SQLite, so that text comparison and
//! `ORDER BY` agree with time order on both. Precision is the microsecond on both.

use sqlx::{
    Decode, Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DbTime(OffsetDateTime);

impl DbTime {
    /// Truncates to the microsecond, the precision both backends keep.
    pub fn new(at: OffsetDateTime) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let micros = at.nanosecond() / 1_000 * 1_000;
        Self(
            at.replace_nanosecond(micros)
                .expect("truncated nanoseconds are in range"),
        )
    }

    pub fn now() -> Self {
        Self::new(OffsetDateTime::now_utc())
    }

    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for DbTime {
    fn from(at: OffsetDateTime) -> Self {
        Self::new(at)
    }
}

impl From<DbTime> for OffsetDateTime {
    fn from(at: DbTime) -> Self {
        at.0
    }
}

impl Type<Postgres> for DbTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for DbTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for DbTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Self::new(<OffsetDateTime as Decode<Postgres>>::decode(
            value,
        )?))
    }
}

impl sqlx::postgres::PgHasArrayType for DbTime {
    fn array_type_info() -> PgTypeInfo {
        <OffsetDateTime as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

impl Type<Sqlite> for DbTime {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for DbTime {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        Encode::<Sqlite>::encode(self.0.format(&format)?, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for DbTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<Sqlite>>::decode(value)?;
        Ok(Self::new(OffsetDateTime::parse(&text, &Rfc3339)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_text_sorts_in_time_order() {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        let a = DbTime::new(datetime!(2026-01-01 12:00:00.12 UTC))
            .0
            .format(&format)
            .unwrap();
        let b = DbTime::new(datetime!(2026-01-01 12:00:00.123 UTC))
            .0
            .format(&format)
            .unwrap();
        assert!(a < b, "{a} should sort before {b}");
        assert_eq!(
            OffsetDateTime::parse(&b, &Rfc3339).unwrap(),
            datetime!(2026-01-01 12:00:00.123 UTC)
        );
    }
}
