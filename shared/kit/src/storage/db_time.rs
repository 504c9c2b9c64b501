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

    /// The same instant cut to the start of its minute (for what an anonymous reporter
    /// does: a finer time could be matched with a gateway's access log).
    pub fn to_minute(self) -> Self {
        Self(
            self.0
                .replace_second(0)
                .and_then(|t| t.replace_nanosecond(0))
                .expect("0 is a valid second and nanosecond"),
        )
    }

    /// Microseconds since the Unix epoch (page tokens carry this).
    pub fn unix_micros(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Self::new)
    }
}

impl serde::Serialize for DbTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.unix_micros())
    }
}

impl<'de> serde::Deserialize<'de> for DbTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let micros = i64::deserialize(deserializer)?;
        Self::from_unix_micros(micros).ok_or_else(|| serde::de::Error::custom("time out of range"))
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
