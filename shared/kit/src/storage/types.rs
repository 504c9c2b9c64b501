//! Domain values as database values on both backends, so that rows are typed: an enum
//! is a `SMALLINT` / `INTEGER` ([`DbEnum`] with [`crate::db_enum!`]), a structured value
//! is JSON text ([`JsonText`]). A stored value the code does not know fails to decode
//! with a message naming the type and the value, instead of reaching a handler.

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{
    Decode, Encode, Postgres, Sqlite, Type,
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef},
    sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef},
};

/// A domain enum that mirrors a protobuf enum and is stored as a small integer: the enum,
/// its [`DbEnum`] values, its sqlx types ([`crate::db_enum!`]), and `name`, `to_wire`
/// and `from_wire` (unspecified and unknown wire values are errors naming what is
/// expected). Attributes before the name (e.g. serde derives) go on the enum.
///
/// ```ignore
/// custos_kit::wire_enum!(Kind, pb::ReportKind, "EVENT or WEAKNESS", {
///     Event = 1 => Event,
///     Weakness = 2 => Weakness,
/// });
/// ```
#[macro_export]
macro_rules! wire_enum {
    ($(#[$attr:meta])* $name:ident, $pb:ty, $field_doc:literal, { $($variant:ident = $n:literal => $pbv:ident),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $(#[$attr])*
        pub enum $name { $($variant),+ }

        impl $crate::storage::DbEnum for $name {
            const NAME: &'static str = stringify!($name);

            fn to_db(self) -> i16 {
                match self { $($name::$variant => $n),+ }
            }

            fn from_db(n: i16) -> Option<Self> {
                match n { $($n => Some($name::$variant),)+ _ => None }
            }
        }

        $crate::db_enum!($name);

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire enum's name, e.g. `REPORT_MEDIUM_PAPER`, for history and tables.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => <$pb>::$pbv.as_str_name()),+ }
            }

            pub fn to_wire(self) -> i32 {
                match self { $($name::$variant => <$pb>::$pbv as i32),+ }
            }

            /// Parses a wire value; unspecified and unknown values are errors.
            pub fn from_wire(n: i32) -> Result<Self, String> {
                match <$pb>::try_from(n) {
                    $(Ok(<$pb>::$pbv) => Ok($name::$variant),)+
                    Ok(_) => Err(format!("is required ({})", $field_doc)),
                    Err(_) => Err(format!("unknown value {n} ({})", $field_doc)),
                }
            }
        }
    };
}

/// An enum stored as a small integer. Values are part of the schema: never renumber one.
pub trait DbEnum: Sized + Copy + Send + Sync + 'static {
    /// The type's name, for errors about values it does not have.
    const NAME: &'static str;

    fn to_db(self) -> i16;

    fn from_db(value: i16) -> Option<Self>;

    /// Decodes a stored value, or says which type lacks it.
    fn decode_db(value: i16) -> Result<Self, BoxDynError> {
        Self::from_db(value)
            .ok_or_else(|| format!("{} has no stored value {value}", Self::NAME).into())
    }
}

/// Implements sqlx's `Type`, `Encode` and `Decode` on both backends (and arrays on
/// PostgreSQL) for a type that implements [`DbEnum`].
#[macro_export]
macro_rules! db_enum {
    ($t:ty) => {
        impl $crate::__sqlx::Type<$crate::__sqlx::Postgres> for $t {
            fn type_info() -> $crate::__sqlx::postgres::PgTypeInfo {
                <i16 as $crate::__sqlx::Type<$crate::__sqlx::Postgres>>::type_info()
            }
        }
        impl $crate::__sqlx::postgres::PgHasArrayType for $t {
            fn array_type_info() -> $crate::__sqlx::postgres::PgTypeInfo {
                <i16 as $crate::__sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }
        impl $crate::__sqlx::Encode<'_, $crate::__sqlx::Postgres> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::__sqlx::postgres::PgArgumentBuffer,
            ) -> Result<$crate::__sqlx::encode::IsNull, $crate::__sqlx::error::BoxDynError> {
                let value = $crate::storage::DbEnum::to_db(*self);
                <i16 as $crate::__sqlx::Encode<$crate::__sqlx::Postgres>>::encode_by_ref(
                    &value, buf,
                )
            }
        }
        impl<'r> $crate::__sqlx::Decode<'r, $crate::__sqlx::Postgres> for $t {
            fn decode(
                value: $crate::__sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, $crate::__sqlx::error::BoxDynError> {
                let n = <i16 as $crate::__sqlx::Decode<$crate::__sqlx::Postgres>>::decode(value)?;
                <$t as $crate::storage::DbEnum>::decode_db(n)
            }
        }
        impl $crate::__sqlx::Type<$crate::__sqlx::Sqlite> for $t {
            fn type_info() -> $crate::__sqlx::sqlite::SqliteTypeInfo {
                <i16 as $crate::__sqlx::Type<$crate::__sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &$crate::__sqlx::sqlite::SqliteTypeInfo) -> bool {
                <i64 as $crate::__sqlx::Type<$crate::__sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl $crate::__sqlx::Encode<'_, $crate::__sqlx::Sqlite> for $t {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::__sqlx::sqlite::SqliteArgumentsBuffer,
            ) -> Result<$crate::__sqlx::encode::IsNull, $crate::__sqlx::error::BoxDynError> {
                let value = $crate::storage::DbEnum::to_db(*self);
                <i16 as $crate::__sqlx::Encode<$crate::__sqlx::Sqlite>>::encode_by_ref(&value, buf)
            }
        }
        impl<'r> $crate::__sqlx::Decode<'r, $crate::__sqlx::Sqlite> for $t {
            fn decode(
                value: $crate::__sqlx::sqlite::SqliteValueRef<'r>,
            ) -> Result<Self, $crate::__sqlx::error::BoxDynError> {
                let n = <i16 as $crate::__sqlx::Decode<$crate::__sqlx::Sqlite>>::decode(value)?;
                <$t as $crate::storage::DbEnum>::decode_db(n)
            }
        }
    };
}

/// A value stored as JSON text on both backends (`TEXT` columns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonText<T>(pub T);

impl<T> JsonText<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for JsonText<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Type<Postgres> for JsonText<T> {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
}

impl<T> PgHasArrayType for JsonText<T> {
    fn array_type_info() -> PgTypeInfo {
        <String as PgHasArrayType>::array_type_info()
    }
}

impl<T: Serialize> Encode<'_, Postgres> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Postgres> for JsonText<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Postgres>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(text)?))
    }
}

impl<T> Type<Sqlite> for JsonText<T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<T: Serialize> Encode<'_, Sqlite> for JsonText<T> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(serde_json::to_string(&self.0)?, buf)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Sqlite> for JsonText<T> {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<Sqlite>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(&text)?))
    }
}
