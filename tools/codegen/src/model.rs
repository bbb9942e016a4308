//! The protocol as every generator sees it: messages, envelopes and enums
//! of one package, each field with its JSON name, its comment and its
//! rules, read once from the descriptors.
//!
//! Everything the proto can say that the JSON view cannot render (maps,
//! `bytes` other than a `(tourcast.v1.json_object)`, oneofs outside an
//! envelope, nested or foreign types) is refused here, so the generators
//! only ever see what they can render.

use prost_reflect::{
    DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, OneofDescriptor,
};

use crate::Error;
use crate::comments::Doc;
use crate::names::enum_value_prefix;
use crate::options;
use crate::rules::{self, FieldRules, OneofRule};

/// What to generate from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The package whose types are generated, e.g. `tourcast.v1`.
    pub package: String,
    /// Files whose messages are protobuf only (no JSON view, no schema, no
    /// TypeScript, no validator), e.g. what instances exchange.
    pub protobuf_only_files: Vec<String>,
}

impl Config {
    /// tourcast's protocol: `tourcast.v1`; checkpoints and what instances
    /// tell each other (`peer.proto`) are protobuf only.
    pub fn tourcast() -> Self {
        Config {
            package: "tourcast.v1".into(),
            protobuf_only_files: vec![
                "tourcast/v1/checkpoint.proto".into(),
                "tourcast/v1/peer.proto".into(),
            ],
        }
    }

    /// Another package, with no protobuf-only file (tests' inline protos).
    pub fn package(package: &str) -> Self {
        Config {
            package: package.into(),
            protobuf_only_files: Vec::new(),
        }
    }
}

/// The package's JSON-view types.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// The package, e.g. `tourcast.v1`.
    pub package: String,
    /// Messages with a JSON view of their own (envelopes excluded), in
    /// file then declaration order.
    pub messages: Vec<Message>,
    /// Envelopes: messages that are one oneof of messages, whose JSON view
    /// is the chosen variant with a `type` discriminator.
    pub envelopes: Vec<Envelope>,
    /// Enums, in file then declaration order.
    pub enums: Vec<Enumeration>,
}

/// A message of the JSON view.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its name, e.g. `Subscribe` (also the TypeScript and schema title).
    pub name: String,
    /// Its fully qualified name, e.g. `tourcast.v1.Subscribe`.
    pub full_name: String,
    /// Its comment.
    pub doc: Doc,
    /// Its fields, in declaration order.
    pub fields: Vec<Field>,
    /// `(tourcast.v1.json_allow_unknown_fields)`.
    pub allows_unknown_fields: bool,
    /// Its `(buf.validate.message).oneof` rules.
    pub oneof_rules: Vec<OneofRule>,
    /// `(tourcast.v1.routing_key)`: set on the events publishers send.
    pub routing_keys: Vec<String>,
}

/// A field of a JSON-view message.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its proto (and Rust) name, e.g. `tour_id`.
    pub name: String,
    /// Its JSON name, e.g. `tourId`.
    pub json_name: String,
    /// Its fully qualified name, for errors.
    pub full_name: String,
    /// Its comment.
    pub doc: Doc,
    /// Its type.
    pub ty: FieldType,
    /// Whether it may be absent, must be present, or repeats.
    pub cardinality: Cardinality,
    /// Its `(buf.validate.field)` rules.
    pub rules: FieldRules,
    /// Whether prost gives it an `Option` (proto3 `optional`, or a message).
    pub has_presence: bool,
}

/// How often a field appears in the JSON view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    /// Always present, its zero value included (a proto3 scalar without `optional`).
    Plain,
    /// Left out when unset, never `null`.
    Optional,
    /// A message field with the `required` rule: always present.
    Required,
    /// An array, empty when there is nothing.
    Repeated,
}

/// A field's type in the JSON view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// `bool`.
    Bool,
    /// `string`.
    String,
    /// `double` or `float`: a JSON number.
    Float,
    /// An integer type: a JSON number within the type's bounds.
    Integer(Integer),
    /// A message of the package.
    Message(TypeName),
    /// An enum of the package.
    Enum(TypeName),
    /// `optional bytes` with `(tourcast.v1.json_object)`: a JSON object,
    /// carried in protobuf as its JSON text (UTF-8).
    JsonObject,
}

/// The integer types, by their JSON bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integer {
    /// `uint32`, `fixed32`.
    Uint32,
    /// `uint64`, `fixed64`.
    Uint64,
    /// `int32`, `sint32`, `sfixed32`.
    Int32,
    /// `int64`, `sint64`, `sfixed64`.
    Int64,
}

/// A reference to a message or enum of the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeName {
    /// Its name, e.g. `Channel`.
    pub name: String,
    /// Its fully qualified name, e.g. `tourcast.v1.Channel`.
    pub full_name: String,
}

/// A message that is a oneof of messages: `ClientMessage`, `ServerMessage`.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Its name, which is also its JSON view's (a union) name.
    pub name: String,
    /// Its fully qualified name.
    pub full_name: String,
    /// The envelope message's comment.
    pub doc: Doc,
    /// Its oneof's name (prost's Rust enum is `<snake name>::<Oneof>`).
    pub oneof: String,
    /// The oneof's comment: the JSON view's description.
    pub oneof_doc: Doc,
    /// Its variants, in declaration order.
    pub variants: Vec<Variant>,
}

/// One variant of an envelope.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The oneof field's name, e.g. `availability_updated`.
    pub field: String,
    /// The JSON `type`, e.g. `tour.availability.updated`.
    pub json_type: String,
    /// The variant's message.
    pub message: TypeName,
    /// The oneof field's comment.
    pub doc: Doc,
}

/// An enum of the JSON view.
#[derive(Debug, Clone)]
pub struct Enumeration {
    /// Its name.
    pub name: String,
    /// Its fully qualified name.
    pub full_name: String,
    /// Its comment.
    pub doc: Doc,
    /// Its values, in declaration order.
    pub values: Vec<EnumValue>,
}

/// One enum value.
#[derive(Debug, Clone)]
pub struct EnumValue {
    /// Its proto name, e.g. `ERROR_CODE_INVALID_MESSAGE`.
    pub name: String,
    /// Its number.
    pub number: i32,
    /// Its JSON name (`invalid_message`); `None` for the zero value, which
    /// only exists because proto3 needs one and is never valid on the wire.
    pub json_name: Option<String>,
    /// Its comment.
    pub doc: Doc,
}

impl Protocol {
    /// Reads the package's types from `pool`.
    pub fn from_pool(pool: &DescriptorPool, config: &Config) -> Result<Protocol, Error> {
        let mut protocol = Protocol {
            package: config.package.clone(),
            messages: Vec::new(),
            envelopes: Vec::new(),
            enums: Vec::new(),
        };
        let in_package = |file: &prost_reflect::FileDescriptor| {
            file.package_name() == config.package
                && !config.protobuf_only_files.iter().any(|f| f == file.name())
        };
        for message in pool.all_messages().filter(|m| in_package(&m.parent_file())) {
            if message.parent_message().is_some() {
                return Err(Error::unsupported(
                    message.full_name(),
                    "nested messages are not supported in the JSON view; declare it at the top level",
                ));
            }
            match envelope_oneof(&message) {
                Some(oneof) => protocol
                    .envelopes
                    .push(read_envelope(pool, &message, &oneof)?),
                None => protocol
                    .messages
                    .push(read_message(pool, &message, config)?),
            }
        }
        for enumeration in pool.all_enums().filter(|e| in_package(&e.parent_file())) {
            protocol.enums.push(read_enum(pool, &enumeration)?);
        }
        protocol.check_references()?;
        Ok(protocol)
    }

    /// The message `full_name`, if it is one of the JSON view's.
    pub fn message(&self, full_name: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.full_name == full_name)
    }

    /// The enum `full_name`, if it is one of the JSON view's.
    pub fn enumeration(&self, full_name: &str) -> Option<&Enumeration> {
        self.enums.iter().find(|e| e.full_name == full_name)
    }

    /// The messages publishers put on the exchange (those with routing keys).
    pub fn events(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| !m.routing_keys.is_empty())
    }

    /// Every type a field or variant names must be a JSON-view type.
    fn check_references(&self) -> Result<(), Error> {
        let fields = self.messages.iter().flat_map(|m| &m.fields);
        for field in fields {
            let known = match &field.ty {
                FieldType::Message(t) => self.message(&t.full_name).is_some(),
                FieldType::Enum(t) => self.enumeration(&t.full_name).is_some(),
                _ => true,
            };
            if !known {
                return Err(Error::unsupported(
                    &field.full_name,
                    "its type has no JSON view (protobuf only, or an envelope)",
                ));
            }
        }
        for envelope in &self.envelopes {
            for variant in &envelope.variants {
                if self.message(&variant.message.full_name).is_none() {
                    return Err(Error::unsupported(
                        &envelope.full_name,
                        format!("variant `{}` has no JSON view of its own", variant.field),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The oneof that makes `message` an envelope: its only real oneof, holding
/// every field, every one a message.
fn envelope_oneof(message: &MessageDescriptor) -> Option<OneofDescriptor> {
    let mut oneofs = message.oneofs().filter(|o| !o.is_synthetic());
    let oneof = oneofs.next()?;
    let all_in_it = message.fields().all(|f| {
        f.containing_oneof()
            .is_some_and(|o| o.name() == oneof.name())
            && matches!(f.kind(), Kind::Message(_))
    });
    (oneofs.next().is_none() && all_in_it).then_some(oneof)
}

fn read_envelope(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
    oneof: &OneofDescriptor,
) -> Result<Envelope, Error> {
    rules::oneof_rules(pool, message)?;
    let file = message.parent_file();
    let variants = message
        .fields()
        .map(|field| {
            let Kind::Message(inner) = field.kind() else {
                unreachable!("envelope_oneof only accepts message fields");
            };
            Variant {
                field: field.name().to_string(),
                json_type: options::json_type(pool, &field)
                    .unwrap_or_else(|| field.name().to_string()),
                message: type_name(inner.name(), inner.full_name()),
                doc: Doc::of(&file, field.path()),
            }
        })
        .collect();
    Ok(Envelope {
        name: message.name().to_string(),
        full_name: message.full_name().to_string(),
        doc: Doc::of(&file, message.path()),
        oneof: oneof.name().to_string(),
        oneof_doc: Doc::of(&file, oneof.path()),
        variants,
    })
}

fn read_message(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
    config: &Config,
) -> Result<Message, Error> {
    if let Some(oneof) = message.oneofs().find(|o| !o.is_synthetic()) {
        return Err(Error::unsupported(
            oneof.full_name(),
            "a oneof outside an envelope has no JSON view; use optional fields and a \
             (buf.validate.message).oneof rule",
        ));
    }
    let fields = message
        .fields()
        .map(|field| read_field(pool, &field, config))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Message {
        name: message.name().to_string(),
        full_name: message.full_name().to_string(),
        doc: Doc::of(&message.parent_file(), message.path()),
        fields,
        allows_unknown_fields: options::allows_unknown_fields(pool, message),
        oneof_rules: rules::oneof_rules(pool, message)?,
        routing_keys: options::routing_keys(pool, message),
    })
}

fn read_field(
    pool: &DescriptorPool,
    field: &FieldDescriptor,
    config: &Config,
) -> Result<Field, Error> {
    if field.is_map() {
        return Err(Error::unsupported(
            field.full_name(),
            "maps have no JSON view",
        ));
    }
    let rules = rules::field_rules(pool, field)?;
    if field.is_list() && rules != FieldRules::default() {
        // buf.validate puts item rules under `repeated.items`, which the
        // validators do not implement (and `rules` refuses).
        return Err(Error::rule(field.full_name(), "rules on a repeated field"));
    }
    if field.is_list() && matches!(field.kind(), Kind::Enum(_)) {
        // The JSON view's serde helpers name one enum value, not a list.
        return Err(Error::unsupported(
            field.full_name(),
            "repeated enums are not supported in the JSON view",
        ));
    }
    let cardinality = if field.is_list() {
        Cardinality::Repeated
    } else if rules.required {
        Cardinality::Required
    } else if field.supports_presence() {
        Cardinality::Optional
    } else {
        Cardinality::Plain
    };
    Ok(Field {
        name: field.name().to_string(),
        json_name: field.json_name().to_string(),
        full_name: field.full_name().to_string(),
        doc: Doc::of(&field.parent_file(), field.path()),
        ty: field_type(pool, field, config)?,
        cardinality,
        rules,
        has_presence: field.supports_presence() && !field.is_list(),
    })
}

fn field_type(
    pool: &DescriptorPool,
    field: &FieldDescriptor,
    config: &Config,
) -> Result<FieldType, Error> {
    if options::json_object(pool, field) {
        return json_object_type(field);
    }
    let local = |full_name: &str, parent: Option<MessageDescriptor>| {
        let package_prefix = format!("{}.", config.package);
        if !full_name.starts_with(&package_prefix) || parent.is_some() {
            return Err(Error::unsupported(
                field.full_name(),
                format!(
                    "its type {full_name} is not a top-level type of {}",
                    config.package
                ),
            ));
        }
        Ok(())
    };
    Ok(match field.kind() {
        Kind::Bool => FieldType::Bool,
        Kind::String => FieldType::String,
        Kind::Double | Kind::Float => FieldType::Float,
        Kind::Uint32 | Kind::Fixed32 => FieldType::Integer(Integer::Uint32),
        Kind::Uint64 | Kind::Fixed64 => FieldType::Integer(Integer::Uint64),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => FieldType::Integer(Integer::Int32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => FieldType::Integer(Integer::Int64),
        Kind::Bytes => {
            return Err(Error::unsupported(
                field.full_name(),
                "bytes have no JSON view; keep the message protobuf only, or mark a JSON \
                 object's text with (tourcast.v1.json_object)",
            ));
        }
        Kind::Message(inner) => {
            local(inner.full_name(), inner.parent_message())?;
            FieldType::Message(type_name(inner.name(), inner.full_name()))
        }
        Kind::Enum(inner) => {
            local(inner.full_name(), inner.parent_message())?;
            FieldType::Enum(type_name(inner.name(), inner.full_name()))
        }
    })
}

/// A `(tourcast.v1.json_object)` field: only an `optional bytes` (an
/// absent object is left out; a plain field's empty zero value would be no
/// object at all, and a list of them has no use yet).
fn json_object_type(field: &FieldDescriptor) -> Result<FieldType, Error> {
    if !matches!(field.kind(), Kind::Bytes) {
        return Err(Error::unsupported(
            field.full_name(),
            format!(
                "(tourcast.v1.json_object) on a {:?} field; it marks `bytes` only",
                field.kind()
            ),
        ));
    }
    if field.is_list() || !field.supports_presence() {
        return Err(Error::unsupported(
            field.full_name(),
            "(tourcast.v1.json_object) on a field that is not `optional bytes`",
        ));
    }
    Ok(FieldType::JsonObject)
}

fn read_enum(pool: &DescriptorPool, enumeration: &EnumDescriptor) -> Result<Enumeration, Error> {
    if enumeration.parent_message().is_some() {
        return Err(Error::unsupported(
            enumeration.full_name(),
            "nested enums are not supported in the JSON view; declare it at the top level",
        ));
    }
    let prefix = enum_value_prefix(enumeration.name());
    let file = enumeration.parent_file();
    let values = enumeration
        .values()
        .map(|value| {
            let json_name = (value.number() != 0).then(|| {
                options::json_value(pool, &value).unwrap_or_else(|| {
                    let name = value.name();
                    name.strip_prefix(&prefix)
                        .unwrap_or(name)
                        .to_ascii_lowercase()
                })
            });
            EnumValue {
                name: value.name().to_string(),
                number: value.number(),
                json_name,
                doc: Doc::of(&file, value.path()),
            }
        })
        .collect();
    Ok(Enumeration {
        name: enumeration.name().to_string(),
        full_name: enumeration.full_name().to_string(),
        doc: Doc::of(&file, enumeration.path()),
        values,
    })
}

fn type_name(name: &str, full_name: &str) -> TypeName {
    TypeName {
        name: name.to_string(),
        full_name: full_name.to_string(),
    }
}
