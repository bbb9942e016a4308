//! Reading the standard `buf.validate` rules the protocol uses, and refusing
//! every other one.
//!
//! The subset: string `min_len` / `max_len` / `pattern`, `uint32` / `uint64`
//! `gte` / `gt` / `lte` / `lt`, bytes `max_len` (on a
//! `(tourcast.v1.json_object)`), `required` on message fields, and the
//! message-level `oneof` rule. Anything else fails generation with an
//! [`Error::UnsupportedRule`] naming it: a rule the protobuf validators
//! skipped while JSON Schema (or a client's protovalidate) enforced it
//! would make the two encodings disagree.

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use crate::Error;
use crate::options::{extension, get};

/// One field's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldRules {
    /// `required`: a message field that must be set.
    pub required: bool,
    /// Fewest characters (Unicode code points, as JSON Schema counts).
    pub min_len: Option<u64>,
    /// Most characters.
    pub max_len: Option<u64>,
    /// A regular expression the whole value must match somewhere (anchor it).
    pub pattern: Option<String>,
    /// Smallest allowed number (`gte`, or `gt` + 1).
    pub min: Option<u64>,
    /// Largest allowed number (`lte`, or `lt` - 1).
    pub max: Option<u64>,
    /// Most bytes of a `bytes` field (`bytes.max_len`).
    pub max_bytes: Option<u64>,
}

/// A `(buf.validate.message).oneof` rule: at most one of `fields` is set;
/// exactly one when `required`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneofRule {
    /// The fields' proto names, in the rule's order.
    pub fields: Vec<String>,
    /// Whether one of them must be set.
    pub required: bool,
}

const FIELD_RULES: &str = "buf.validate.field";
const MESSAGE_RULES: &str = "buf.validate.message";
const ONEOF_RULES: &str = "buf.validate.oneof";

/// The field's `(buf.validate.field)` rules.
pub fn field_rules(pool: &DescriptorPool, field: &FieldDescriptor) -> Result<FieldRules, Error> {
    let Some(rules) = extension(pool, &field.options(), FIELD_RULES) else {
        return Ok(FieldRules::default());
    };
    let rules = as_message(&rules, field.full_name())?;
    supported_only(
        field.full_name(),
        &rules,
        &["required", "string", "uint32", "uint64", "bytes"],
    )?;
    let mut parsed = FieldRules {
        required: get(&rules, "required").and_then(|v| v.as_bool()) == Some(true),
        ..FieldRules::default()
    };
    if parsed.required && !matches!(field.kind(), Kind::Message(_)) {
        return Err(Error::rule(
            field.full_name(),
            "buf.validate.FieldRules.required on a field that is not a message",
        ));
    }
    if let Some(string) = get(&rules, "string") {
        expect_kind(field, "string", matches!(field.kind(), Kind::String))?;
        read_string_rules(field, &as_message(&string, field.full_name())?, &mut parsed)?;
    }
    if let Some(bytes) = get(&rules, "bytes") {
        expect_kind(field, "bytes", matches!(field.kind(), Kind::Bytes))?;
        let bytes = as_message(&bytes, field.full_name())?;
        supported_only(field.full_name(), &bytes, &["max_len"])?;
        parsed.max_bytes = get(&bytes, "max_len").and_then(|v| v.as_u64());
    }
    for (kind, matching) in [
        ("uint32", matches!(field.kind(), Kind::Uint32)),
        ("uint64", matches!(field.kind(), Kind::Uint64)),
    ] {
        if let Some(numbers) = get(&rules, kind) {
            expect_kind(field, kind, matching)?;
            read_range(
                field,
                &as_message(&numbers, field.full_name())?,
                &mut parsed,
            )?;
        }
    }
    Ok(parsed)
}

fn read_string_rules(
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    parsed: &mut FieldRules,
) -> Result<(), Error> {
    supported_only(field.full_name(), rules, &["min_len", "max_len", "pattern"])?;
    parsed.min_len = get(rules, "min_len").and_then(|v| v.as_u64());
    parsed.max_len = get(rules, "max_len").and_then(|v| v.as_u64());
    parsed.pattern = get(rules, "pattern").and_then(|v| v.as_str().map(str::to_owned));
    Ok(())
}

fn read_range(
    field: &FieldDescriptor,
    rules: &DynamicMessage,
    parsed: &mut FieldRules,
) -> Result<(), Error> {
    supported_only(field.full_name(), rules, &["gte", "lte", "gt", "lt"])?;
    let value = |name: &str| {
        get(rules, name).and_then(|v| v.as_u64().or_else(|| v.as_u32().map(u64::from)))
    };
    let empty = || Error::unsupported(field.full_name(), "its bounds leave no valid value");
    parsed.min = match (value("gte"), value("gt")) {
        (Some(gte), _) => Some(gte),
        (None, Some(gt)) => Some(gt.checked_add(1).ok_or_else(empty)?),
        (None, None) => None,
    };
    parsed.max = match (value("lte"), value("lt")) {
        (Some(lte), _) => Some(lte),
        (None, Some(lt)) => Some(lt.checked_sub(1).ok_or_else(empty)?),
        (None, None) => None,
    };
    if let (Some(min), Some(max)) = (parsed.min, parsed.max)
        && min > max
    {
        return Err(empty());
    }
    Ok(())
}

/// The message's `(buf.validate.message)` oneof rules; any other message
/// rule, and any `(buf.validate.oneof)` rule, is refused.
pub fn oneof_rules(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
) -> Result<Vec<OneofRule>, Error> {
    for oneof in message.oneofs() {
        if extension(pool, &oneof.options(), ONEOF_RULES).is_some() {
            return Err(Error::rule(oneof.full_name(), "(buf.validate.oneof)"));
        }
    }
    let Some(rules) = extension(pool, &message.options(), MESSAGE_RULES) else {
        return Ok(Vec::new());
    };
    let rules = as_message(&rules, message.full_name())?;
    supported_only(message.full_name(), &rules, &["oneof"])?;
    let groups = get(&rules, "oneof")
        .and_then(|v| v.as_list().map(<[_]>::to_vec))
        .unwrap_or_default();
    groups
        .iter()
        .map(|group| oneof_rule(message, &as_message(group, message.full_name())?))
        .collect()
}

fn oneof_rule(message: &MessageDescriptor, group: &DynamicMessage) -> Result<OneofRule, Error> {
    let names: Vec<String> = get(group, "fields")
        .and_then(|v| v.as_list().map(<[_]>::to_vec))
        .unwrap_or_default()
        .iter()
        .filter_map(|name| name.as_str().map(str::to_owned))
        .collect();
    for name in &names {
        let Some(field) = message.get_field_by_name(name) else {
            return Err(Error::unsupported(
                message.full_name(),
                format!("its oneof rule names no field `{name}`"),
            ));
        };
        if !field.supports_presence() || field.is_list() {
            return Err(Error::rule(
                field.full_name(),
                "a (buf.validate.message).oneof rule over a field without presence",
            ));
        }
    }
    if names.len() < 2 {
        return Err(Error::unsupported(
            message.full_name(),
            "a oneof rule needs at least two fields",
        ));
    }
    Ok(OneofRule {
        fields: names,
        required: get(group, "required").and_then(|v| v.as_bool()) == Some(true),
    })
}

/// Refuses any rule set in `rules` that is not in `supported`.
fn supported_only(element: &str, rules: &DynamicMessage, supported: &[&str]) -> Result<(), Error> {
    for (descriptor, _) in rules.fields() {
        if !supported.contains(&descriptor.name()) {
            return Err(Error::rule(element, descriptor.full_name()));
        }
    }
    Ok(())
}

fn expect_kind(field: &FieldDescriptor, rules: &str, matching: bool) -> Result<(), Error> {
    if matching {
        return Ok(());
    }
    Err(Error::unsupported(
        field.full_name(),
        format!("`{rules}` rules on a {:?} field", field.kind()),
    ))
}

fn as_message(value: &prost_reflect::Value, element: &str) -> Result<DynamicMessage, Error> {
    value
        .as_message()
        .cloned()
        .ok_or_else(|| Error::unsupported(element, "a buf.validate option that is not a message"))
}
