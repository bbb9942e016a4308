//! serde helpers for `(tourcast.v1.json_object)` fields: an `optional
//! bytes` holding a JSON object's text (UTF-8), which the JSON view shows
//! as the object itself (`"data":{"field":"description"}`), not as base64.
//!
//! The code `tools/codegen` generates (through `build.rs`) points every such
//! field's serde `with` here. The bytes are the object's JSON text: read
//! from JSON, the object written compactly (keys sorted, as serde_json's
//! maps keep them); from protobuf, the text the sender wrote, which the
//! generated validator requires to be a JSON object
//! (`validate::check_json_object`). Written to JSON, the text goes out as
//! it is, after a syntax check.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Writes the bytes as the JSON object they hold. Bytes that are not one
/// (a message built without validation) fail serialization rather than put
/// arbitrary text into a frame.
pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
    let Some(bytes) = value else {
        // Left out by the field's `skip_serializing_if`.
        return serializer.serialize_none();
    };
    let raw = object_text(bytes).map_err(S::Error::custom)?;
    serializer.serialize_some(raw)
}

/// Reads a JSON object into its JSON text, written compactly; anything
/// else is an error. It goes through a map rather than a `RawValue`, which
/// only serde_json's own deserializers can produce: serde buffers an
/// internally tagged enum (`{"type":"publish",…}`) before reading it.
pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<u8>>, D::Error> {
    let object = Map::<String, Value>::deserialize(deserializer)?;
    serde_json::to_vec(&object)
        .map(Some)
        .map_err(|e| D::Error::custom(e.to_string()))
}

/// How deeply a JSON object may nest, itself included (`{}` is 1,
/// `{"a":[{}]}` is 3). serde_json (the gateway's own JSON, and many a
/// client's) refuses a document nested beyond 128 levels; a JSON object
/// carried in protobuf is only parsed by whoever reads it as JSON, so it is
/// bounded well below that, in both encodings, rather than break every JSON
/// reader of a message a protobuf sender wrote.
pub const MAX_DEPTH: usize = 32;

/// Why bytes are not a JSON object this protocol carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// Not UTF-8, not JSON, or JSON but not an object.
    NotAnObject,
    /// An object nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unfit::NotAnObject => "not a JSON object",
            Unfit::TooDeep => "a JSON object nested too deep",
        })
    }
}

/// The bytes as a JSON object's raw text, or why they are not one.
pub fn object_text(bytes: &[u8]) -> Result<&RawValue, Unfit> {
    let text = std::str::from_utf8(bytes).map_err(|_| Unfit::NotAnObject)?;
    // Parsing into a borrowed `RawValue` checks the syntax without building
    // the object (and without recursion: any depth parses).
    let raw: &RawValue = serde_json::from_str(text).map_err(|_| Unfit::NotAnObject)?;
    if !is_object(raw) {
        return Err(Unfit::NotAnObject);
    }
    if depth(raw.get()) > MAX_DEPTH {
        return Err(Unfit::TooDeep);
    }
    Ok(raw)
}

/// The deepest nesting of objects and arrays in valid JSON text.
pub fn depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in text.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn is_object(raw: &RawValue) -> bool {
    // A `RawValue` holds one JSON value without surrounding whitespace.
    raw.get().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(default, skip_serializing_if = "Option::is_none", with = "super")]
        data: Option<Vec<u8>>,
    }

    #[test]
    fn an_object_round_trips_as_itself() {
        let holder: Holder =
            serde_json::from_str(r#"{"data": {"b": [1, {"c": "é"}], "a": 2}}"#).unwrap();
        let text = r#"{"a":2,"b":[1,{"c":"é"}]}"#;
        assert_eq!(holder.data.as_deref(), Some(text.as_bytes()));
        assert_eq!(
            serde_json::to_string(&holder).unwrap(),
            format!(r#"{{"data":{text}}}"#)
        );
        // Protobuf's text goes out as the sender wrote it.
        let spaced = Holder {
            data: Some(br#"{"b": 1, "a": 2}"#.to_vec()),
        };
        assert_eq!(
            serde_json::to_string(&spaced).unwrap(),
            r#"{"data":{"b": 1, "a": 2}}"#
        );
        assert_eq!(serde_json::to_string(&Holder { data: None }).unwrap(), "{}");
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        for text in [
            r#"{"data": [1]}"#,
            r#"{"data": "x"}"#,
            r#"{"data": 1}"#,
            r#"{"data": null}"#,
        ] {
            assert!(serde_json::from_str::<Holder>(text).is_err(), "{text}");
        }
        for bytes in [
            b"[1]".as_slice(),
            b"{".as_slice(),
            b"\xff{}".as_slice(),
            b"".as_slice(),
        ] {
            let holder = Holder {
                data: Some(bytes.to_vec()),
            };
            assert!(serde_json::to_string(&holder).is_err(), "{bytes:?}");
        }
        // Whitespace around the object is not part of it.
        assert_eq!(object_text(b" {} \n").unwrap().get(), "{}");
    }

    #[test]
    fn depth_counts_objects_and_arrays_outside_strings() {
        assert_eq!(depth("{}"), 1);
        assert_eq!(depth(r#"{"a":[{}],"b":{}}"#), 3);
        assert_eq!(depth(r#"{"a":"[[{{\"]]"}"#), 1);
        assert_eq!(depth(r#"{"a\\":["x\\\"["]}"#), 2);
        let nested = |levels: usize| {
            format!(
                "{}{}",
                "{\"a\":".repeat(levels - 1) + "{",
                "}".repeat(levels)
            )
        };
        assert_eq!(depth(&nested(MAX_DEPTH)), MAX_DEPTH);
        assert!(object_text(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            object_text(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err(),
            Unfit::TooDeep
        );
        // Any depth parses (no recursion): 100,000 levels are just refused.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(object_text(deep.as_bytes()).unwrap_err(), Unfit::TooDeep);
    }
}
