//! serde helpers for protobuf enums inside messages.
//!
//! prost stores an enum field as an `i32`; the JSON view carries the enum's
//! JSON name (`"code":"invalid_message"`). The code `tools/codegen`
//! generates (through `build.rs`) points every enum field's serde `with` here.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _, ser::Error as _};

/// Serializes an `i32` enum field by its enum's JSON name.
pub fn serialize<E, S>(value: &i32, serializer: S) -> Result<S::Ok, S::Error>
where
    E: TryFrom<i32> + Serialize,
    S: Serializer,
{
    match E::try_from(*value) {
        Ok(known) => known.serialize(serializer),
        Err(_) => Err(S::Error::custom(format!("unknown enum value {value}"))),
    }
}

/// Deserializes an enum's JSON name into the `i32` that prost stores.
pub fn deserialize<'de, E, D>(deserializer: D) -> Result<i32, D::Error>
where
    E: Deserialize<'de> + Into<i32>,
    D: Deserializer<'de>,
{
    E::deserialize(deserializer)
        .map(Into::into)
        .map_err(|e| D::Error::custom(e.to_string()))
}

/// Serializes an `optional` enum field (`Option<i32>`) by its enum's JSON
/// name; `None` is skipped by the field's `skip_serializing_if`.
pub fn serialize_option<E, S>(value: &Option<i32>, serializer: S) -> Result<S::Ok, S::Error>
where
    E: TryFrom<i32> + Serialize,
    S: Serializer,
{
    match value {
        Some(value) => serialize::<E, S>(value, serializer),
        None => serializer.serialize_none(),
    }
}

/// Deserializes an `optional` enum field's JSON name.
pub fn deserialize_option<'de, E, D>(deserializer: D) -> Result<Option<i32>, D::Error>
where
    E: Deserialize<'de> + Into<i32>,
    D: Deserializer<'de>,
{
    deserialize::<E, D>(deserializer).map(Some)
}
