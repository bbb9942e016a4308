//! The decode pipeline: bytes in an encoding → a validated, typed message,
//! or a [`Refusal`] saying why not. Client frames ([`codec`](super::codec))
//! and publisher events ([`crate::source::inbound`]) both go through it,
//! so they parse, validate and word their errors the same way.
//!
//! - JSON: parsed, required to be an object, checked against its JSON
//!   Schema (compiled once, with the linear-time `regex` engine), then typed
//!   by serde.
//! - Protobuf: decoded by prost, then checked by the generated
//!   `buf.validate` impls ([`Rules::check_proto`]).
//!
//! What a caller does with a refusal (an `error` reply, a poison log line)
//! is the caller's business.

use jsonschema::JsonType;
use jsonschema::Validator;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

use super::validate::{Validate, Violation, wording};

/// Longest explanation kept from a parser's message.
const MAX_DETAIL: usize = 200;

/// Why bytes did not become a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// Not JSON at all.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// Not protobuf (or not this message).
    #[error("malformed protobuf: {0}")]
    MalformedProtobuf(String),
    /// JSON, but not an object.
    #[error("a message must be a JSON object")]
    NotAnObject,
    /// A well-formed message that breaks a rule.
    #[error("{}", .0.message)]
    Invalid(Violation),
}

/// A generated schema failed to compile: a build bug, caught at start-up.
#[derive(Debug, Error)]
#[error("the generated schema for `{name}` does not compile: {reason}")]
pub struct SchemaError {
    name: String,
    reason: String,
}

/// One message's rules: its JSON Schema, compiled, for JSON; the generated
/// [`Validate`] impl for protobuf. Both come from the same `buf.validate`
/// options.
pub struct Rules {
    validator: Validator,
}

impl SchemaError {
    /// A generated schema named `name` that is unusable, and why.
    pub fn new(name: &str, reason: &str) -> Self {
        SchemaError {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

impl Rules {
    /// Compiles `schema` (named `name` in errors).
    pub fn compile(name: &str, schema: Value) -> Result<Self, SchemaError> {
        // The `regex` engine: linear-time matching, and the same engine (so
        // the same semantics) as the generated protobuf checks.
        let validator = jsonschema::draft202012::options()
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&schema)
            .map_err(|e| SchemaError {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Rules { validator })
    }

    /// Checks a JSON value; the first broken rule, worded.
    pub fn check_json(&self, value: &Value) -> Result<(), Violation> {
        // `is_valid` short-circuits without building errors: the fast path.
        if self.validator.is_valid(value) {
            return Ok(());
        }
        match self.validator.iter_errors(value).next() {
            Some(error) => Err(describe(&error)),
            None => Ok(()),
        }
    }

    /// Checks a message typed from JSON that [`Rules::check_json`] accepted
    /// against the rules its schema cannot state (a JSON object's size).
    pub fn check_typed_json<M: Validate>(&self, message: &M) -> Result<(), Violation> {
        message.validate_typed_json("")
    }

    /// Checks a decoded protobuf message against the same rules (the
    /// generated [`Validate`] impl; the JSON Schema is not consulted).
    pub fn check_proto<M: Validate>(&self, message: &M) -> Result<(), Violation> {
        message.validate("")
    }
}

/// Parses JSON bytes that must hold an object.
pub fn parse_object(bytes: &[u8]) -> Result<Value, Refusal> {
    object(serde_json::from_slice(bytes))
}

/// Parses JSON text that must hold an object. Text frames arrive as
/// checked UTF-8 already; parsing them as `&str` skips a second check
/// (measured: ~10% of a JSON subscribe's decode).
pub fn parse_object_str(text: &str) -> Result<Value, Refusal> {
    object(serde_json::from_str(text))
}

fn object(parsed: Result<Value, serde_json::Error>) -> Result<Value, Refusal> {
    let value = parsed.map_err(|e| Refusal::MalformedJson(truncate(&e.to_string(), MAX_DETAIL)))?;
    if !value.is_object() {
        return Err(Refusal::NotAnObject);
    }
    Ok(value)
}

/// Types a schema-valid JSON value, and checks what its schema could not
/// (see [`Rules::check_typed_json`]).
pub fn typed<T: DeserializeOwned + Validate>(value: Value) -> Result<T, Refusal> {
    let typed: T = serde_json::from_value(value).map_err(|e| {
        // The schema accepted what serde refused: they disagree, which is a
        // bug, but still a message that cannot be used.
        Refusal::Invalid(Violation {
            path: String::new(),
            message: truncate(&format!("invalid message: {e}"), MAX_DETAIL),
        })
    })?;
    typed.validate_typed_json("").map_err(Refusal::Invalid)?;
    Ok(typed)
}

/// Decodes protobuf bytes (not yet validated: see [`Rules::check_proto`]).
pub fn decode_proto<M: prost::Message + Default>(bytes: &[u8]) -> Result<M, Refusal> {
    M::decode(bytes).map_err(|e| Refusal::MalformedProtobuf(truncate(&e.to_string(), MAX_DETAIL)))
}

/// The JSON pointer and wording of a schema error, in the same words as
/// the protobuf side. Missing and unexpected properties point at the
/// property, not its parent.
fn describe(error: &jsonschema::ValidationError<'_>) -> Violation {
    let mut path = error.instance_path().as_str().to_string();
    let field = path.rsplit('/').next().unwrap_or_default().to_string();
    let message = match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            path = format!("{path}/{name}");
            wording::required(name)
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            if let Some(first) = unexpected.first() {
                path = format!("{path}/{first}");
            }
            format!("unknown field {}", unexpected.join(", "))
        }
        ValidationErrorKind::MinLength { .. } if error.instance().as_str() == Some("") => {
            wording::empty(&field)
        }
        ValidationErrorKind::MinLength { limit } => wording::too_short(&field, *limit),
        ValidationErrorKind::MaxLength { limit } => wording::too_long(&field, *limit),
        ValidationErrorKind::Pattern { pattern } => wording::mismatch(&field, pattern),
        ValidationErrorKind::Minimum { limit } => wording::below(&field, limit),
        // A nested message or a `(tourcast.v1.json_object)` that is not an
        // object: worded as the protobuf side words bytes that are not one.
        ValidationErrorKind::Type {
            kind: TypeKind::Single(JsonType::Object),
        } if !path.is_empty() => wording::not_an_object(&field),
        ValidationErrorKind::Maximum { limit } => wording::above(&field, limit),
        // A `(buf.validate.message).oneof` group, as tools/codegen renders it:
        // `anyOf` of "one is present" (none was) and `not` of "two are".
        ValidationErrorKind::AnyOf { context } => {
            let names: Vec<&str> = context
                .iter()
                .flatten()
                .filter_map(|e| match e.kind() {
                    ValidationErrorKind::Required { property } => property.as_str(),
                    _ => None,
                })
                .collect();
            match names.first() {
                Some(first) => {
                    path = format!("{path}/{first}");
                    wording::one_of_missing(&names)
                }
                None => error.to_string(),
            }
        }
        ValidationErrorKind::Not { schema } => {
            let mut names: Vec<&str> = Vec::new();
            let pairs = schema.get("anyOf").and_then(Value::as_array);
            for pair in pairs.into_iter().flatten() {
                let required = pair.get("required").and_then(Value::as_array);
                for name in required.into_iter().flatten().filter_map(Value::as_str) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            let set = names
                .iter()
                .filter(|name| error.instance().get(**name).is_some())
                .nth(1);
            match set {
                Some(extra) => {
                    path = format!("{path}/{extra}");
                    wording::one_of_conflict(&names)
                }
                None => error.to_string(),
            }
        }
        _ => error.to_string(),
    };
    Violation {
        path,
        message: truncate(&message, MAX_DETAIL),
    }
}

/// `text` cut to `max_chars` characters (with an ellipsis), for messages
/// that quote untrusted input.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
