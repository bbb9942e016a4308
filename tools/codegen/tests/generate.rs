//! The generator on inline protos: the rules it reads, the rules and shapes
//! it refuses (with an error naming them), and what each renderer writes.
//! (`parity.rs` runs the generated Rust against the generated schemas.)

use std::path::Path;

use serde_json::{Value, json};
use tourcast_codegen::model::{Cardinality, FieldType, Integer};
use tourcast_codegen::rules::{FieldRules, OneofRule};
use tourcast_codegen::{Config, Error, Protocol, asyncapi, json_schema, load, rust, typescript};

const HEADER: &str = r#"
syntax = "proto3";
package test.v1;
import "buf/validate/validate.proto";
import "tourcast/v1/options.proto";
"#;

/// Compiles `body` (after the common header) as `test/v1/test.proto` and
/// reads it as the generators do.
fn protocol(body: &str) -> Result<Protocol, Error> {
    let source = format!("{HEADER}{body}");
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let compiled = load::from_sources(&[("test/v1/test.proto", &source)], &[&protos])?;
    Protocol::from_pool(&compiled.pool, &Config::package("test.v1"))
}

fn rules_of(body: &str, field: &str) -> FieldRules {
    let protocol = protocol(body).unwrap();
    let found = protocol
        .messages
        .iter()
        .flat_map(|m| &m.fields)
        .find(|f| f.name == field);
    found
        .unwrap_or_else(|| panic!("no field {field}"))
        .rules
        .clone()
}

/// Generation fails, and the error names `element` and `words`.
fn assert_refused(body: &str, element: &str, words: &str) {
    let error = protocol(body).map(|_| ()).unwrap_err().to_string();
    assert!(error.contains(element), "{error:?} does not name {element}");
    assert!(error.contains(words), "{error:?} does not say {words:?}");
}

#[test]
fn string_rules_are_read() {
    let rules = rules_of(
        r#"message M { string s = 1 [(buf.validate.field).string = {min_len: 1, max_len: 64, pattern: "^[a-z]+$"}]; }"#,
        "s",
    );
    assert_eq!(
        rules,
        FieldRules {
            min_len: Some(1),
            max_len: Some(64),
            pattern: Some("^[a-z]+$".into()),
            ..FieldRules::default()
        }
    );
}

#[test]
fn integer_rules_are_read_as_inclusive_bounds() {
    let body = r#"message M {
        uint32 a = 1 [(buf.validate.field).uint32 = {gte: 2, lte: 9}];
        uint32 b = 2 [(buf.validate.field).uint32 = {gt: 2, lt: 9}];
        uint64 c = 3 [(buf.validate.field).uint64 = {lte: 18446744073709551614}];
        uint64 d = 4 [(buf.validate.field).uint64 = {gt: 0}];
    }"#;
    let bounds = |field| {
        let rules = rules_of(body, field);
        (rules.min, rules.max)
    };
    assert_eq!(bounds("a"), (Some(2), Some(9)));
    assert_eq!(bounds("b"), (Some(3), Some(8)));
    assert_eq!(bounds("c"), (None, Some(u64::MAX - 1)));
    assert_eq!(bounds("d"), (Some(1), None));
}

#[test]
fn required_and_cardinality() {
    let protocol = protocol(
        r#"message Inner { string id = 1; }
        message M {
            Inner must = 1 [(buf.validate.field).required = true];
            Inner may = 2;
            optional string maybe = 3;
            string always = 4;
            repeated Inner many = 5;
        }"#,
    )
    .unwrap();
    let message = protocol.message("test.v1.M").unwrap();
    let cardinality: Vec<(&str, Cardinality)> = message
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.cardinality))
        .collect();
    assert_eq!(
        cardinality,
        [
            ("must", Cardinality::Required),
            ("may", Cardinality::Optional),
            ("maybe", Cardinality::Optional),
            ("always", Cardinality::Plain),
            ("many", Cardinality::Repeated),
        ]
    );
    assert!(message.fields[0].rules.required);
}

#[test]
fn message_oneof_rules_are_read() {
    let protocol = protocol(
        r#"message M {
            option (buf.validate.message).oneof = {fields: ["a", "b"], required: true};
            option (buf.validate.message).oneof = {fields: ["c", "d", "e"]};
            optional string a = 1; optional string b = 2;
            optional string c = 3; optional string d = 4; optional string e = 5;
        }"#,
    )
    .unwrap();
    assert_eq!(
        protocol.message("test.v1.M").unwrap().oneof_rules,
        [
            OneofRule {
                fields: vec!["a".into(), "b".into()],
                required: true
            },
            OneofRule {
                fields: vec!["c".into(), "d".into(), "e".into()],
                required: false
            },
        ]
    );
}

#[test]
fn unsupported_rules_fail_generation_naming_them() {
    let field = |rules: &str, ty: &str| {
        format!("message M {{ {ty} f = 1 [(buf.validate.field).{rules}]; }}")
    };
    for (body, rule) in [
        (
            field("string = {email: true}", "string"),
            "buf.validate.StringRules.email",
        ),
        (
            field("string = {len: 3}", "string"),
            "buf.validate.StringRules.len",
        ),
        (
            field("uint32 = {in: [1, 2]}", "uint32"),
            "buf.validate.UInt32Rules.in",
        ),
        (
            field("int32 = {gte: 1}", "int32"),
            "buf.validate.FieldRules.int32",
        ),
        (
            field("required = true", "string"),
            "required on a field that is not a message",
        ),
        (
            field("cel = {id: \"x\", expression: \"true\"}", "string"),
            "buf.validate.FieldRules.cel",
        ),
    ] {
        assert_refused(&body, "test.v1.M.f", rule);
        assert_refused(
            &body,
            "test.v1.M.f",
            "not implemented by tourcast-codegen's validators",
        );
    }
    assert_refused(
        r#"message M { option (buf.validate.message).cel = {id: "x", expression: "true"}; string f = 1; }"#,
        "test.v1.M",
        "buf.validate.MessageRules.cel",
    );
    assert_refused(
        r#"message Env { oneof kind { option (buf.validate.oneof).required = true; M m = 1; } } message M {}"#,
        "test.v1.Env.kind",
        "(buf.validate.oneof)",
    );
    assert_refused(
        r#"message M { repeated string f = 1 [(buf.validate.field).string = {min_len: 1}]; }"#,
        "test.v1.M.f",
        "rules on a repeated field",
    );
}

#[test]
fn rules_that_cannot_hold_fail_generation() {
    assert_refused(
        r#"message M { string f = 1 [(buf.validate.field).uint32 = {lte: 3}]; }"#,
        "test.v1.M.f",
        "`uint32` rules on a string field",
    );
    assert_refused(
        r#"message M { uint32 f = 1 [(buf.validate.field).uint32 = {lt: 0}]; }"#,
        "test.v1.M.f",
        "its bounds leave no valid value",
    );
    assert_refused(
        r#"message M { uint32 f = 1 [(buf.validate.field).uint32 = {gte: 5, lte: 4}]; }"#,
        "test.v1.M.f",
        "its bounds leave no valid value",
    );
    assert_refused(
        r#"message M { option (buf.validate.message).oneof = {fields: ["a"]}; optional string a = 1; }"#,
        "test.v1.M",
        "at least two fields",
    );
    assert_refused(
        r#"message M { option (buf.validate.message).oneof = {fields: ["a", "b"]}; optional string a = 1; string b = 2; }"#,
        "test.v1.M.b",
        "without presence",
    );
}

#[test]
fn shapes_without_a_json_view_fail_generation() {
    for (body, element, words) in [
        (
            "message M { map<string, string> f = 1; }",
            "test.v1.M.f",
            "maps have no JSON view",
        ),
        (
            "message M { bytes f = 1; }",
            "test.v1.M.f",
            "bytes have no JSON view",
        ),
        (
            "message M { message N {} }",
            "test.v1.M.N",
            "nested messages",
        ),
        (
            "message M { oneof x { string a = 1; string b = 2; } }",
            "test.v1.M.x",
            "a oneof outside an envelope",
        ),
        (
            "enum E { E_UNSPECIFIED = 0; } message M { repeated E f = 1; }",
            "test.v1.M.f",
            "repeated enums",
        ),
        (
            "message M { buf.validate.StringRules f = 1; }",
            "test.v1.M.f",
            "not a top-level type of test.v1",
        ),
    ] {
        assert_refused(body, element, words);
    }
}

#[test]
fn types_and_json_names_come_from_the_descriptors() {
    let protocol = protocol(
        r#"enum Kind {
            KIND_UNSPECIFIED = 0;
            KIND_PLAIN_NAME = 1;
            KIND_RENAMED = 2 [(tourcast.v1.json_value) = "re.named"];
        }
        message M {
            option (tourcast.v1.json_allow_unknown_fields) = true;
            option (tourcast.v1.routing_key) = "m.created";
            uint32 tour_count = 1; int64 delta = 2; fixed64 hash = 3; double rate = 4;
            Kind kind = 5;
        }
        message N { string id = 1; }
        message Env { oneof kind { M created = 1 [(tourcast.v1.json_type) = "m.created"]; N plain_name = 2; } }"#,
    )
    .unwrap();
    let kind = protocol.enumeration("test.v1.Kind").unwrap();
    let names: Vec<Option<&str>> = kind.values.iter().map(|v| v.json_name.as_deref()).collect();
    assert_eq!(names, [None, Some("plain_name"), Some("re.named")]);
    let message = protocol.message("test.v1.M").unwrap();
    assert!(message.allows_unknown_fields);
    assert_eq!(message.routing_keys, ["m.created"]);
    assert!(!protocol.message("test.v1.N").unwrap().allows_unknown_fields);
    let types: Vec<(&str, &FieldType)> = message
        .fields
        .iter()
        .map(|f| (f.json_name.as_str(), &f.ty))
        .collect();
    assert_eq!(
        types[0],
        ("tourCount", &FieldType::Integer(Integer::Uint32))
    );
    assert_eq!(types[1], ("delta", &FieldType::Integer(Integer::Int64)));
    assert_eq!(types[2], ("hash", &FieldType::Integer(Integer::Uint64)));
    assert_eq!(types[3], ("rate", &FieldType::Float));
    let envelope = &protocol.envelopes[0];
    let variants: Vec<(&str, &str)> = envelope
        .variants
        .iter()
        .map(|v| (v.json_type.as_str(), v.message.name.as_str()))
        .collect();
    assert_eq!(variants, [("m.created", "M"), ("plain_name", "N")]);
}

const UNION: &str = r#"
    // A colour.
    enum Color {
      COLOR_UNSPECIFIED = 0;
      // Warm.
      COLOR_RED = 1;
      COLOR_DARK_BLUE = 2 [(tourcast.v1.json_value) = "navy"];
    }
    // Where.
    message Spot {
      // Its name.
      string name = 1 [(buf.validate.field).string = {min_len: 1, max_len: 8, pattern: "^[a-z]+$"}];
      optional Color color = 2;
      uint32 seats = 3 [(buf.validate.field).uint32 = {lte: 10}];
    }
    // Asks for a spot.
    message Ask {
      option (buf.validate.message).oneof = {fields: ["id", "color"], required: true};
      optional string id = 1;
      optional Color color = 2;
      repeated Spot near = 3;
      Spot at = 4 [(buf.validate.field).required = true];
      int64 offset = 5;
    }
    // The envelope.
    message Env {
      // Every message.
      oneof kind {
        // Ask for one.
        Ask ask = 1 [(tourcast.v1.json_type) = "ask.now"];
      }
    }
"#;

#[test]
fn json_schema_of_a_union() {
    let protocol = protocol(UNION).unwrap();
    let files = json_schema::schema_files(&protocol).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].file, "env.schema.json");
    let schema = &files[0].schema;
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(
        schema["$id"],
        "https://tourcast.dev/schemas/v1/env.schema.json"
    );
    assert_eq!(schema["title"], "Env");
    assert_eq!(schema["description"], "Every message.");
    assert_eq!(schema["properties"]["type"]["enum"], json!(["ask.now"]));
    assert_eq!(
        schema["allOf"][0],
        json!({
            "if": {"type": "object", "required": ["type"], "properties": {"type": {"const": "ask.now"}}},
            "then": {"$ref": "#/definitions/Ask"}
        })
    );
    let ask = &schema["definitions"]["Ask"];
    // The variant is described by its oneof field, titled by its message.
    assert_eq!(ask["title"], "Ask");
    assert_eq!(ask["description"], "Ask for one.");
    assert_eq!(ask["additionalProperties"], false);
    assert_eq!(ask["required"], json!(["type", "near", "at", "offset"]));
    assert_eq!(
        ask["properties"]["type"],
        json!({"const": "ask.now", "type": "string"})
    );
    assert_eq!(
        ask["properties"]["near"],
        json!({"type": "array", "items": {"$ref": "#/definitions/Spot"}})
    );
    assert_eq!(ask["properties"]["offset"]["minimum"], json!(i64::MIN));
    assert_eq!(
        ask["anyOf"],
        json!([
            {"properties": {"id": true}, "required": ["id"]},
            {"properties": {"color": true}, "required": ["color"]}
        ])
    );
    assert_eq!(
        ask["not"],
        json!({"anyOf": [{"properties": {"color": true, "id": true}, "required": ["id", "color"]}]})
    );
    let spot = &schema["definitions"]["Spot"];
    assert_eq!(spot["description"], "Where.");
    assert_eq!(
        spot["properties"]["name"],
        json!({"description": "Its name.", "type": "string", "minLength": 1, "maxLength": 8, "pattern": "^[a-z]+$"})
    );
    // A tighter rule replaces the type's bound; the type's other bound stays.
    assert_eq!(
        spot["properties"]["seats"],
        json!({"type": "integer", "minimum": 0, "maximum": 10})
    );
    assert_eq!(spot["required"], json!(["name", "seats"]));
    assert_eq!(
        schema["definitions"]["Color"],
        json!({
            "title": "Color",
            "description": "A colour.",
            "oneOf": [
                {"const": "red", "type": "string", "description": "Warm."},
                {"const": "navy", "type": "string"}
            ]
        })
    );
    assert!(!files[0].text().contains("format"));
}

#[test]
fn json_schema_of_an_event() {
    let protocol = protocol(
        r#"// Happened.
        message Happened {
            option (tourcast.v1.json_allow_unknown_fields) = true;
            option (tourcast.v1.routing_key) = "it.happened";
            string id = 1;
            optional uint64 version = 2;
        }"#,
    )
    .unwrap();
    let files = json_schema::schema_files(&protocol).unwrap();
    let schema = &files[0].schema;
    assert_eq!(files[0].file, "happened.schema.json");
    assert_eq!(schema["title"], "Happened");
    assert_eq!(schema["description"], "Happened.");
    assert_eq!(schema["required"], json!(["id"]));
    // Open: unknown properties are allowed.
    assert!(schema.get("additionalProperties").is_none());
    assert!(schema.get("definitions").is_none());
    assert_eq!(schema["properties"]["version"]["maximum"], json!(u64::MAX));
    // The published schema validates with a consumer's validator.
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(validator.is_valid(&json!({"id": "a", "extra": true})));
    assert!(!validator.is_valid(&json!({"id": "a", "version": null})));
    assert!(!validator.is_valid(&json!({"version": 1})));
}

#[test]
fn a_variant_that_is_also_a_field_type_is_refused() {
    let protocol = protocol(
        r#"message A { string id = 1; }
        message B { A a = 1; }
        message Env { oneof kind { A a = 1; B b = 2; } }"#,
    )
    .unwrap();
    let error = json_schema::schema_files(&protocol)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("test.v1.Env") && error.contains("variant A"),
        "{error}"
    );
}

#[test]
fn typescript_of_a_union() {
    let protocol = protocol(UNION).unwrap();
    let files: std::collections::BTreeMap<String, String> =
        typescript::files(&protocol).into_iter().collect();
    let header = typescript::HEADER;
    assert_eq!(
        files["types/Ask.ts"],
        format!(
            "{header}import type {{ Color }} from \"./Color.js\";\nimport type {{ Spot }} from \"./Spot.js\";\n\n\
             /**\n * Asks for a spot.\n */\nexport type Ask = {{ \nid?: string, \ncolor?: Color, \nnear: Array<Spot>, \nat: Spot, \noffset: number, }} & (\n  \
             | {{ id: string; color?: never }}\n  | {{ color: Color; id?: never }}\n);\n"
        )
    );
    assert_eq!(
        files["types/Env.ts"],
        format!(
            "{header}import type {{ Ask }} from \"./Ask.js\";\n\n/**\n * Every message.\n */\n\
             export type Env = {{ \"type\": \"ask.now\" }} & Ask;\n"
        )
    );
    assert_eq!(
        files["types/Color.ts"],
        format!("{header}\n/**\n * A colour.\n */\nexport type Color = \"red\" | \"navy\";\n")
    );
    assert!(files["types/Spot.ts"].contains("/**\n * Its name.\n */\nname: string, "));
    assert_eq!(
        files["index.ts"],
        format!(
            "{header}export type {{ Ask }} from \"./types/Ask.js\";\nexport type {{ Color }} from \"./types/Color.js\";\n\
             export type {{ Env }} from \"./types/Env.js\";\nexport type {{ Spot }} from \"./types/Spot.js\";\n"
        )
    );
}

#[test]
fn typescript_narrows_every_oneof_group() {
    let protocol = protocol(
        r#"message M {
            option (buf.validate.message).oneof = {fields: ["a", "b"], required: true};
            option (buf.validate.message).oneof = {fields: ["c", "d"]};
            optional string a = 1; optional string b = 2; optional bool c = 3; optional uint32 d = 4;
        }"#,
    )
    .unwrap();
    let files: std::collections::BTreeMap<String, String> =
        typescript::files(&protocol).into_iter().collect();
    assert!(
        files["types/M.ts"].ends_with(
            "d?: number, } & (\n  | { a: string; b?: never }\n  | { b: string; a?: never }\n) & (\n  \
             | { c: boolean; d?: never }\n  | { d: number; c?: never }\n  | { c?: never; d?: never }\n);\n"
        ),
        "{}",
        files["types/M.ts"]
    );
}

#[test]
fn the_rust_support_module_parses_and_names_the_runtime() {
    let protocol = protocol(UNION).unwrap();
    let support = rust::support_module(&protocol, "my_crate::runtime").unwrap();
    let file = syn::parse_file(&support).unwrap();
    assert!(!file.items.is_empty());
    assert!(support.contains("impl my_crate::runtime::validate::Validate for Ask"));
    assert!(support.contains("impl my_crate::runtime::validate::Validate for Env"));
    assert!(support.contains("my_crate::runtime::json_enum::serialize::<super::Color, S>"));
    assert!(support.contains("check_pattern"));
    assert!(rust::support_module(&protocol, "not a path").is_err());
}

#[test]
fn asyncapi_names_every_message_and_routing_key() {
    let protocol = protocol(&format!(
        "{UNION}
        // Happened.
        message Happened {{
            option (tourcast.v1.routing_key) = \"it.happened\";
            option (tourcast.v1.routing_key) = \"it.happened-again\";
            string id = 1;
        }}"
    ))
    .unwrap();
    let schemas = json_schema::schema_files(&protocol).unwrap();
    let text = asyncapi::render(&protocol, &schemas).unwrap();
    assert!(
        text.starts_with(
            "# Generated by `cargo run -p tourcast-codegen` from proto/. Do not edit.\n"
        )
    );
    let document: Value = yaml_to_json(&text);
    assert_eq!(document["asyncapi"], "3.0.0");
    let messages = &document["components"]["messages"];
    assert_eq!(messages["Ask"]["title"], "ask.now");
    assert_eq!(messages["Ask"]["summary"], "Ask for one.");
    assert_eq!(messages["Ask"]["description"], "Asks for a spot.");
    assert_eq!(
        messages["Ask"]["payload"]["schema"]["$ref"],
        "./env.schema.json#/definitions/Ask"
    );
    assert_eq!(
        messages["Happened"]["payload"]["schema"]["$ref"],
        "./happened.schema.json"
    );
    for (channel, key) in [
        ("itHappened", "it.happened"),
        ("itHappenedAgain", "it.happened-again"),
    ] {
        let channel = &document["channels"][channel];
        assert_eq!(channel["address"], key);
        assert_eq!(channel["bindings"]["amqp"]["exchange"]["type"], "topic");
        assert_eq!(channel["bindings"]["amqp"]["exchange"]["durable"], true);
    }
    let operations = &document["operations"];
    assert_eq!(operations["receiveItHappened"]["action"], "receive");
    assert_eq!(
        operations["receiveItHappened"]["bindings"]["amqp"]["deliveryMode"],
        2
    );
    // Env is not the client envelope: the gateway sends it.
    assert_eq!(operations["sendEnv"]["action"], "send");
    assert_eq!(
        operations["sendEnvAtRoot"]["channel"]["$ref"],
        "#/channels/websocketRoot"
    );
    assert_eq!(document["channels"]["websocket"]["address"], "/ws");
}

fn yaml_to_json(text: &str) -> Value {
    let yaml: yaml_serde::Value = yaml_serde::from_str(text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// A publisher event with a `(tourcast.v1.json_object)` field, bounded.
const JSON_OBJECT_EVENT: &str = r#"// Edited.
    message Edited {
        option (tourcast.v1.routing_key) = "it.edited";
        // The edit, a JSON object.
        optional bytes data = 1 [(tourcast.v1.json_object) = true, (buf.validate.field).bytes = {max_len: 64}];
        // Any object.
        optional bytes any = 2 [(tourcast.v1.json_object) = true];
    }"#;

#[test]
fn a_json_object_is_an_optional_bytes_with_a_byte_bound() {
    let protocol = protocol(JSON_OBJECT_EVENT).unwrap();
    let fields = &protocol.messages[0].fields;
    assert_eq!(fields[0].ty, FieldType::JsonObject);
    assert_eq!(fields[0].cardinality, Cardinality::Optional);
    assert_eq!(
        fields[0].rules,
        FieldRules {
            max_bytes: Some(64),
            ..FieldRules::default()
        }
    );
    assert_eq!(fields[1].ty, FieldType::JsonObject);
    assert_eq!(fields[1].rules, FieldRules::default());
}

#[test]
fn json_schema_and_typescript_of_a_json_object() {
    let protocol = protocol(JSON_OBJECT_EVENT).unwrap();
    let files = json_schema::schema_files(&protocol).unwrap();
    let schema = &files[0].schema;
    assert_eq!(
        schema["properties"]["data"],
        json!({"type": "object", "description": "The edit, a JSON object."})
    );
    assert_eq!(
        schema["properties"]["any"],
        json!({"type": "object", "description": "Any object."})
    );
    let validator = jsonschema::validator_for(schema).unwrap();
    assert!(validator.is_valid(&json!({"data": {"field": "x", "value": [1]}})));
    assert!(validator.is_valid(&json!({})));
    for not_an_object in [json!([1]), json!("{}"), json!(null), json!(1)] {
        assert!(!validator.is_valid(&json!({ "data": not_an_object })));
    }
    let files: std::collections::BTreeMap<String, String> =
        typescript::files(&protocol).into_iter().collect();
    assert!(
        files["types/Edited.ts"]
            .contains("data?: { [key: string]: unknown }, \n/**\n * Any object.\n */\nany?: { [key: string]: unknown }, };"),
        "{}",
        files["types/Edited.ts"]
    );
}

#[test]
fn the_rust_of_a_json_object_checks_it_in_both_encodings() {
    let protocol = protocol(JSON_OBJECT_EVENT).unwrap();
    let support = rust::support_module(&protocol, "my_crate::runtime").unwrap();
    syn::parse_file(&support).unwrap();
    // Protobuf: the bytes are an object's text, within the bound; JSON:
    // the bound only (the schema checked the object).
    assert!(
        support.contains(r#"my_crate::runtime::validate::check_json_object(value, path, "data")"#)
    );
    assert!(
        support.contains(r#"my_crate::runtime::validate::check_json_object(value, path, "any")"#)
    );
    assert_eq!(
        support
            .matches(r#"check_max_bytes(value, 64usize, path, "data")"#)
            .count(),
        2
    );
    assert!(support.contains("fn validate_typed_json"));
    assert!(!support.contains(r#"check_max_bytes(value, 64usize, path, "any")"#));
    // Its depth too, bounded or not.
    assert!(support.contains(r#"check_json_depth(value, path, "data")"#));
    assert!(support.contains(r#"check_json_depth(value, path, "any")"#));
    // A message holding one, at any depth, passes the JSON check down.
    let nested = protocol_with_holder();
    let support = rust::support_module(&nested, "rt").unwrap();
    assert_eq!(
        support.matches("fn validate_typed_json").count(),
        4,
        "{support}"
    );
    assert!(support.contains(r#"rt::validate::Validate::validate_typed_json(inner, "")"#));
}

/// Outer holds Middle holds a bounded JSON object; Unbounded holds one
/// (its depth is checked); Other holds none.
fn protocol_with_holder() -> Protocol {
    protocol(
        r#"message Outer { optional Middle m = 1; repeated Other o = 2; }
        message Middle { repeated Leaf leaves = 1; }
        message Unbounded { optional bytes d = 1 [(tourcast.v1.json_object) = true]; }
        message Leaf { optional bytes d = 1 [(tourcast.v1.json_object) = true, (buf.validate.field).bytes = {max_len: 8}]; }
        message Other { string s = 1; }"#,
    )
    .unwrap()
}

#[test]
fn json_object_only_marks_optional_bytes() {
    for (body, words) in [
        (
            "message M { optional string f = 1 [(tourcast.v1.json_object) = true]; }",
            "(tourcast.v1.json_object) on a string field",
        ),
        (
            "message M { bytes f = 1 [(tourcast.v1.json_object) = true]; }",
            "not `optional bytes`",
        ),
        (
            "message M { repeated bytes f = 1 [(tourcast.v1.json_object) = true]; }",
            "not `optional bytes`",
        ),
        (
            "message M { optional bytes f = 1; }",
            "bytes have no JSON view",
        ),
        (
            "message M { optional string f = 1 [(buf.validate.field).bytes = {max_len: 3}]; }",
            "`bytes` rules on a string field",
        ),
        (
            "message M { optional bytes f = 1 [(tourcast.v1.json_object) = true, (buf.validate.field).bytes = {min_len: 3}]; }",
            "buf.validate.BytesRules.min_len",
        ),
    ] {
        assert_refused(body, "test.v1.M.f", words);
    }
}
