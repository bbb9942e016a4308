//! Rule checks for decoded protobuf messages, worded once for both encodings.
//!
//! The rules are standard `buf.validate` options in `proto/`. JSON frames are
//! checked by the JSON Schema generated from them; protobuf frames never pass
//! through JSON, so `tools/codegen` (run by `build.rs`) generates a
//! [`Validate`] impl per message from the same options, calling the
//! `check_*` functions below. Paths are JSON pointers with the JSON field
//! names, and [`wording`] words both sides, so a mistake gets the same
//! `path` and message in either encoding (`tools/codegen/tests/parity.rs`
//! checks it on every supported rule).
//!
//! Why not `prost-protovalidate-build`, which generates such impls from the
//! same options: its types crate runs `protoc` in its build script, so the
//! gateway would no longer build on a machine without `protoc` (measured: a
//! clean build fails with "Could not find `protoc`"), and its violations
//! carry rule ids but, without reflection, not the limits the protocol's
//! error messages quote. The generated code covers the subset of
//! `buf.validate` the protocol uses (string lengths and patterns, integer
//! bounds, `required`, the message-level `oneof`, defined enum values, the
//! size of a `(tourcast.v1.json_object)`); the generator refuses any other
//! rule rather than ignore it.
//!
//! Two rules have no JSON Schema keyword: a JSON object's size in bytes and
//! its depth ([`json_object::MAX_DEPTH`]). JSON frames get them from
//! [`Validate::validate_typed_json`], after the schema and serde, on the
//! compact text the object was typed into.

use regex::Regex;

use super::json_object;

/// A broken rule: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer to the offending field, e.g. `/tourId`.
    pub path: String,
    /// Human-readable explanation.
    pub message: String,
}

impl Violation {
    fn new(parent: &str, field: &str, message: String) -> Self {
        Violation {
            path: format!("{parent}/{field}"),
            message,
        }
    }

    /// The same violation seen from the parent message: `{parent}/{field}` is
    /// prefixed to its path. Nested messages are validated against an empty
    /// path and prefixed only on failure, so valid messages allocate nothing.
    pub fn under(mut self, parent: &str, field: &str) -> Self {
        self.path = format!("{parent}/{field}{}", self.path);
        self
    }

    /// A required field is absent.
    pub fn missing(parent: &str, field: &str) -> Self {
        Violation::new(parent, field, wording::required(field))
    }

    /// None of a group of which exactly one is required is set; the
    /// pointer names the group's first field.
    pub fn one_of_missing(parent: &str, fields: &[&str]) -> Self {
        Violation::new(parent, fields[0], wording::one_of_missing(fields))
    }

    /// More than one of a group of which at most one may be set; the
    /// pointer names `extra`, the second one set.
    pub fn one_of_conflict(parent: &str, fields: &[&str], extra: &str) -> Self {
        Violation::new(parent, extra, wording::one_of_conflict(fields))
    }
}

/// How a broken rule is worded. Shared with the JSON path (the codec words
/// JSON Schema errors the same way), so a mistake reads the same in both
/// encodings.
pub mod wording {
    /// None of a oneof group is set.
    pub fn one_of_missing(fields: &[&str]) -> String {
        format!("{} is required", fields.join(" or "))
    }

    /// More than one of a oneof group is set.
    pub fn one_of_conflict(fields: &[&str]) -> String {
        format!("only one of {} may be set", fields.join(", "))
    }

    /// An empty value where one is required.
    pub fn empty(field: &str) -> String {
        format!("{field} is required and must not be empty")
    }
    /// A string shorter than `min` characters.
    pub fn too_short(field: &str, min: u64) -> String {
        format!("{field} must be at least {min} characters long")
    }
    /// A string longer than `max` characters.
    pub fn too_long(field: &str, max: u64) -> String {
        format!("{field} must be at most {max} characters long")
    }
    /// A string that does not match `pattern`.
    pub fn mismatch(field: &str, pattern: &str) -> String {
        format!("{field} does not match {pattern}")
    }
    /// A number below `min`.
    pub fn below(field: &str, min: impl std::fmt::Display) -> String {
        format!("{field} must be at least {min}")
    }
    /// A number above `max`.
    pub fn above(field: &str, max: impl std::fmt::Display) -> String {
        format!("{field} must be at most {max}")
    }
    /// A missing field.
    pub fn required(field: &str) -> String {
        format!("{field} is required")
    }
    /// A value that is not a JSON object (in protobuf: bytes that are not
    /// a JSON object's UTF-8 text).
    pub fn not_an_object(field: &str) -> String {
        format!("{field} must be a JSON object")
    }
    /// A JSON object nested more than `max` levels deep (itself included).
    pub fn too_deep(field: &str, max: u64) -> String {
        format!("{field} must nest at most {max} levels deep")
    }
    /// A JSON object whose text is over `max` bytes.
    pub fn too_large(field: &str, max: u64) -> String {
        format!("{field} must be at most {max} bytes of JSON")
    }
}

/// Checks a message against the rules declared in `proto/`.
pub trait Validate {
    /// Returns the first broken rule, with `path` as the message's own pointer.
    fn validate(&self, path: &str) -> Result<(), Violation>;

    /// The rules a JSON Schema cannot state (a JSON object's depth and size
    /// in bytes), on a message typed from JSON its schema accepted. Messages
    /// without such rules have nothing to check.
    fn validate_typed_json(&self, path: &str) -> Result<(), Violation> {
        let _ = path;
        Ok(())
    }
}

/// Used by the generated `Validate` impls, as are the other `check_*` functions.
pub fn check_min_len(value: &str, min: usize, parent: &str, field: &str) -> Result<(), Violation> {
    // JSON Schema counts characters (code points), not bytes.
    if value.chars().count() < min {
        let message = if value.is_empty() {
            wording::empty(field)
        } else {
            wording::too_short(field, min as u64)
        };
        return Err(Violation::new(parent, field, message));
    }
    Ok(())
}

pub fn check_max_len(value: &str, max: usize, parent: &str, field: &str) -> Result<(), Violation> {
    if value.len() > max && value.chars().count() > max {
        return Err(Violation::new(
            parent,
            field,
            wording::too_long(field, max as u64),
        ));
    }
    Ok(())
}

pub fn check_pattern(
    value: &str,
    regex: &Regex,
    pattern: &str,
    parent: &str,
    field: &str,
) -> Result<(), Violation> {
    if !regex.is_match(value) {
        return Err(Violation::new(
            parent,
            field,
            wording::mismatch(field, pattern),
        ));
    }
    Ok(())
}

pub fn check_min(value: u64, min: u64, parent: &str, field: &str) -> Result<(), Violation> {
    if value < min {
        return Err(Violation::new(parent, field, wording::below(field, min)));
    }
    Ok(())
}

pub fn check_max(value: u64, max: u64, parent: &str, field: &str) -> Result<(), Violation> {
    if value > max {
        return Err(Violation::new(parent, field, wording::above(field, max)));
    }
    Ok(())
}

/// A `(tourcast.v1.json_object)` field's bytes are a JSON object's UTF-8
/// text, nested at most [`json_object::MAX_DEPTH`] deep.
pub fn check_json_object(value: &[u8], parent: &str, field: &str) -> Result<(), Violation> {
    match json_object::object_text(value) {
        Ok(_) => Ok(()),
        Err(json_object::Unfit::NotAnObject) => {
            Err(Violation::new(parent, field, wording::not_an_object(field)))
        }
        Err(json_object::Unfit::TooDeep) => Err(too_deep(parent, field)),
    }
}

/// The depth of a JSON object typed from JSON (the schema checked it is
/// one; its text is the compact one serde wrote).
pub fn check_json_depth(value: &[u8], parent: &str, field: &str) -> Result<(), Violation> {
    let text = std::str::from_utf8(value).unwrap_or_default();
    if json_object::depth(text) > json_object::MAX_DEPTH {
        return Err(too_deep(parent, field));
    }
    Ok(())
}

fn too_deep(parent: &str, field: &str) -> Violation {
    Violation::new(
        parent,
        field,
        wording::too_deep(field, json_object::MAX_DEPTH as u64),
    )
}

/// At most `max` bytes (a JSON object's text: `bytes.max_len`).
pub fn check_max_bytes(
    value: &[u8],
    max: usize,
    parent: &str,
    field: &str,
) -> Result<(), Violation> {
    if value.len() > max {
        return Err(Violation::new(
            parent,
            field,
            wording::too_large(field, max as u64),
        ));
    }
    Ok(())
}

/// The zero value of a proto enum means "unset", which is never valid.
pub fn check_enum<E: TryFrom<i32>>(value: i32, parent: &str, field: &str) -> Result<(), Violation> {
    if value == 0 || E::try_from(value).is_err() {
        return Err(Violation::new(
            parent,
            field,
            format!("{field} has an unknown value {value}"),
        ));
    }
    Ok(())
}
