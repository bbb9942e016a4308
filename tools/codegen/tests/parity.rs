//! The generated validators and the generated JSON Schemas agree, on the
//! fixture's inline protos (`fixture/src/protos.rs`, compiled by this
//! crate in the fixture's build script).
//!
//! Each case is a JSON message. The JSON side checks it as the gateway
//! does (its `Rules::check_json`, on the schema's definition of that
//! `type`); the protobuf side types it with the generated serde attributes,
//! takes it through protobuf bytes and runs the generated `Validate` impl
//! (the gateway's `Rules::check_proto`). Both must accept it, or refuse it
//! with the same pointer and the same words; a mistake only JSON can make
//! (a wrong type, an unknown value) must be refused by the schema. A
//! validator a consumer would use (the `jsonschema` crate, draft from
//! `$schema`) must agree on validity too.

use prost::Message as _;
use serde_json::{Value, json};
use tourcast::protocol::decode::Rules;
use tourcast::protocol::schema::variants;
use tourcast::protocol::validate::{Validate, Violation};
use tourcast_codegen_fixture::v1::{self, envelope};
use tourcast_codegen_fixture::{ENVELOPE_SCHEMA, OPEN_SCHEMA};

/// The gateway's validator for one `type` of the fixture's envelope.
fn json_rules(message_type: &str) -> Rules {
    let union: Value = serde_json::from_str(ENVELOPE_SCHEMA).unwrap();
    let (_, variant) = variants(&union)
        .into_iter()
        .find(|(t, _)| t == message_type)
        .unwrap_or_else(|| panic!("no variant {message_type}"));
    Rules::compile(message_type, variant).unwrap()
}

/// A validator as a consumer compiles the published schema.
fn consumer(schema: &str) -> jsonschema::Validator {
    jsonschema::validator_for(&serde_json::from_str(schema).unwrap()).unwrap()
}

fn valid_rules() -> Value {
    json!({
        "type": "rules",
        "name": "ab",
        "small": 1,
        "big": 0,
        "inner": {"id": "x"},
        "items": [],
        "color": "red",
        "offset": -3,
        "ratio": 0.5,
        "flag": false
    })
}

/// `valid_rules()` with `changes` applied (`null` removes a property).
fn rules_with(changes: Value) -> Value {
    let mut message = valid_rules();
    for (key, value) in changes.as_object().unwrap() {
        if value.is_null() {
            message.as_object_mut().unwrap().remove(key);
        } else {
            message[key] = value.clone();
        }
    }
    message
}

/// What each side says about `message`: the JSON side's verdict (the
/// schema, then what it cannot state, on the typed message: a JSON
/// object's size), and the protobuf side's when the message can be typed
/// at all.
fn verdicts(message: &Value) -> (Result<(), Violation>, Option<Result<(), Violation>>) {
    let message_type = message["type"].as_str().unwrap();
    let rules = json_rules(message_type);
    let schema = rules.check_json(message);
    let typed = serde_json::from_value::<envelope::Kind>(message.clone()).ok();
    let json = schema.clone().and_then(|()| match &typed {
        Some(kind) => rules.check_typed_json(kind),
        None => panic!("{message}: the schema accepts what serde cannot type"),
    });
    let proto = typed.map(|kind| {
        // Through protobuf bytes, as a binary frame would arrive.
        let bytes = v1::Envelope { kind: Some(kind) }.encode_to_vec();
        let decoded = v1::Envelope::decode(bytes.as_slice()).unwrap();
        rules.check_proto(&decoded)
    });
    // A consumer's validator has the schema only (a JSON object's size has
    // no keyword): it agrees with the gateway's schema check.
    let published = consumer(ENVELOPE_SCHEMA).is_valid(message);
    assert_eq!(
        published,
        schema.is_ok(),
        "{message}: a consumer's validator disagrees with the gateway's ({schema:?})"
    );
    (json, proto)
}

/// Both sides refuse `message` with `(path, words)`.
fn assert_refused(message: Value, path: &str, words: &str) {
    let (json, proto) = verdicts(&message);
    let expected = Err(Violation {
        path: path.into(),
        message: words.into(),
    });
    assert_eq!(json, expected, "JSON: {message}");
    assert_eq!(proto, Some(expected), "protobuf: {message}");
}

/// Both sides accept `message`.
fn assert_accepted(message: Value) {
    let (json, proto) = verdicts(&message);
    assert_eq!(json, Ok(()), "JSON: {message}");
    assert_eq!(proto, Some(Ok(())), "protobuf: {message}");
}

/// Only JSON can say it; the schema refuses it.
fn assert_json_only_refused(message: Value) {
    let (json, proto) = verdicts(&message);
    assert!(json.is_err(), "JSON accepts {message}");
    assert_eq!(
        proto, None,
        "serde types {message}, which the schema refuses"
    );
}

#[test]
fn string_lengths_and_patterns() {
    assert_refused(
        rules_with(json!({"name": ""})),
        "/name",
        "name is required and must not be empty",
    );
    assert_refused(
        rules_with(json!({"name": "a"})),
        "/name",
        "name must be at least 2 characters long",
    );
    assert_refused(
        rules_with(json!({"name": "abcdefghi"})),
        "/name",
        "name must be at most 8 characters long",
    );
    // Characters, not bytes: eight two-byte characters fit.
    assert_accepted(rules_with(json!({"name": "éééééééé"})));
    assert_refused(
        rules_with(json!({"code": "ab1"})),
        "/code",
        "code does not match ^[A-Z]{3}$",
    );
    assert_accepted(rules_with(json!({"code": "ABC", "label": "abcd"})));
    assert_refused(
        rules_with(json!({"label": "abcde"})),
        "/label",
        "label must be at most 4 characters long",
    );
    assert_refused(
        rules_with(json!({"label": "AB"})),
        "/label",
        "label does not match ^[a-z]+$",
    );
}

#[test]
fn integer_bounds() {
    assert_refused(
        rules_with(json!({"small": 0})),
        "/small",
        "small must be at least 1",
    );
    assert_refused(
        rules_with(json!({"small": 11})),
        "/small",
        "small must be at most 10",
    );
    assert_accepted(rules_with(json!({"small": 10})));
    // gt / lt are the inclusive bounds one step in.
    assert_refused(
        rules_with(json!({"exclusive": 1})),
        "/exclusive",
        "exclusive must be at least 2",
    );
    assert_refused(
        rules_with(json!({"exclusive": 10})),
        "/exclusive",
        "exclusive must be at most 9",
    );
    assert_accepted(rules_with(json!({"exclusive": 9})));
    assert_refused(
        rules_with(json!({"big": 1_000_000_000_001_u64})),
        "/big",
        "big must be at most 1000000000000",
    );
    assert_json_only_refused(rules_with(json!({"small": -1})));
    assert_json_only_refused(rules_with(json!({"small": "3"})));
}

#[test]
fn required_nested_and_repeated_messages() {
    assert_refused(
        rules_with(json!({"inner": null})),
        "/inner",
        "inner is required",
    );
    assert_refused(
        rules_with(json!({"inner": {"id": ""}})),
        "/inner/id",
        "id is required and must not be empty",
    );
    assert_refused(
        rules_with(json!({"extra": {"id": "long"}})),
        "/extra/id",
        "id must be at most 3 characters long",
    );
    assert_refused(
        rules_with(json!({"items": [{"id": "a"}, {"id": "toolong"}]})),
        "/items/1/id",
        "id must be at most 3 characters long",
    );
    assert_accepted(rules_with(
        json!({"extra": {"id": "abc"}, "items": [{"id": "a"}]}),
    ));
}

#[test]
fn message_oneof_rules() {
    let choice = |fields: Value| {
        let mut message = json!({"type": "choice.made"});
        message
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        message
    };
    assert_accepted(choice(json!({"a": "x"})));
    assert_accepted(choice(json!({"b": 2, "d": "navy"})));
    assert_refused(choice(json!({})), "/a", "a or b is required");
    assert_refused(
        choice(json!({"a": "x", "b": 1})),
        "/b",
        "only one of a, b may be set",
    );
    // The second group is not required, but exclusive.
    assert_refused(
        choice(json!({"a": "x", "c": "y", "d": "red"})),
        "/d",
        "only one of c, d may be set",
    );
    // A field of a group still has its own rules.
    assert_refused(
        choice(json!({"a": ""})),
        "/a",
        "a is required and must not be empty",
    );
}

#[test]
fn enums_use_their_json_names() {
    assert_accepted(rules_with(json!({"color": "navy", "shade": "red"})));
    // Only the JSON name is a name: not the value's own, not the zero value.
    assert_json_only_refused(rules_with(json!({"color": "dark_blue"})));
    assert_json_only_refused(rules_with(json!({"color": "unspecified"})));
    assert_json_only_refused(rules_with(json!({"color": null})));
    let typed: envelope::Kind =
        serde_json::from_value(rules_with(json!({"color": "navy"}))).unwrap();
    let envelope::Kind::Rules(rules) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(rules.color, v1::Color::DarkBlue as i32);
    assert_eq!(serde_json::to_value(&typed).unwrap()["color"], "navy");
    // An unset (zero) or unknown number is a protobuf-only mistake.
    for number in [0, 7] {
        let mut rules = rules.clone();
        rules.color = number;
        assert_eq!(
            rules.validate(""),
            Err(Violation {
                path: "/color".into(),
                message: format!("color has an unknown value {number}"),
            })
        );
    }
}

#[test]
fn json_view_options() {
    // json_type names the variant; json names are the proto's; absent
    // optionals are left out, never null.
    let choice = envelope::Kind::Choice(v1::Choice {
        a: Some("x".into()),
        ..Default::default()
    });
    assert_eq!(
        serde_json::to_value(&choice).unwrap(),
        json!({"type": "choice.made", "a": "x"})
    );
    // Strict messages refuse unknown properties, on both sides.
    assert_json_only_refused(rules_with(json!({"surprise": 1})));
    // An open message (json_allow_unknown_fields) takes them.
    let open = json!({"id": "o1", "surprise": {"any": "thing"}});
    let rules = Rules::compile("Open", serde_json::from_str(OPEN_SCHEMA).unwrap()).unwrap();
    assert_eq!(rules.check_json(&open), Ok(()));
    assert!(consumer(OPEN_SCHEMA).is_valid(&open));
    let typed: v1::Open = serde_json::from_value(open).unwrap();
    assert_eq!(typed.id, "o1");
    assert_eq!(typed.validate(""), Ok(()));
    assert_eq!(
        v1::Open { id: String::new() }.validate(""),
        rules.check_json(&json!({"id": ""}))
    );
    // Routing keys come from the proto.
    assert_eq!(
        v1::Open::ROUTING_KEYS,
        ["fixture.opened", "fixture.reopened"]
    );
}

#[test]
fn a_valid_message_passes_both_sides() {
    assert_accepted(valid_rules());
    assert_accepted(rules_with(json!({
        "code": "XYZ", "label": "ok", "exclusive": 5, "big": 1_000_000_000_000_u64,
        "extra": {"id": "e"}, "items": [{"id": "1"}, {"id": "22"}, {"id": "333"}],
        "shade": "navy", "ratio": 1e300
    })));
}

/// `{"v":"xxx…"}`: a JSON object whose compact text is `bytes` long.
fn object_of(bytes: usize) -> Value {
    json!({ "v": "x".repeat(bytes - r#"{"v":""}"#.len()) })
}

/// A `documents` message (a repeated field is always present in JSON).
fn documents(fields: Value) -> Value {
    let mut message = json!({"type": "documents", "parts": []});
    message
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    message
}

#[test]
fn json_objects_are_objects_within_their_byte_bound() {
    assert_accepted(documents(json!({})));
    assert_accepted(documents(json!({
        "data": object_of(16),
        "any": object_of(10_000),
        "part": {"data": {"a": [1, null]}},
        "parts": [{}, {"data": object_of(16)}]
    })));
    // Bytes, not characters: "é" is two.
    assert_accepted(documents(json!({"data": {"v": "éééé"}})));
    assert_refused(
        documents(json!({"data": {"v": "ééééé"}})),
        "/data",
        "data must be at most 16 bytes of JSON",
    );
    assert_refused(
        documents(json!({"data": object_of(17)})),
        "/data",
        "data must be at most 16 bytes of JSON",
    );
    assert_refused(
        documents(json!({"part": {"data": object_of(17)}})),
        "/part/data",
        "data must be at most 16 bytes of JSON",
    );
    assert_refused(
        documents(json!({"parts": [{}, {"data": object_of(17)}]})),
        "/parts/1/data",
        "data must be at most 16 bytes of JSON",
    );
    // The JSON side measures the object written compactly: spaces and key
    // order in the frame do not count.
    let spaced: Value = serde_json::from_str(
        r#"{"type": "documents", "parts": [], "data": { "b" : 1 , "a" : 2 }}"#,
    )
    .unwrap();
    assert_accepted(spaced.clone());
    let typed: envelope::Kind = serde_json::from_value(spaced).unwrap();
    let envelope::Kind::Documents(documents_message) = &typed else {
        panic!("{typed:?}");
    };
    assert_eq!(
        documents_message.data.as_deref(),
        Some(br#"{"a":2,"b":1}"#.as_slice())
    );
}

/// `{"a":{"a":…{}}}`: an object nested `levels` deep, itself included.
fn nested(levels: usize) -> Value {
    (1..levels).fold(json!({}), |inner, _| json!({ "a": inner }))
}

#[test]
fn json_objects_nest_at_most_32_deep_in_both_encodings() {
    let words = "any must nest at most 32 levels deep";
    assert_accepted(documents(json!({"any": nested(32)})));
    assert_refused(documents(json!({"any": nested(33)})), "/any", words);
    assert_refused(
        documents(json!({"parts": [{"data": {"a": [[[nested(30)]]]}}]})),
        "/parts/0/data",
        "data must nest at most 32 levels deep",
    );
    // Protobuf: whatever depth a sender wrote, far beyond what a JSON
    // parser takes (serde_json's limit is 128).
    let text = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let deep = v1::Documents {
        any: Some(text.into_bytes()),
        ..Default::default()
    };
    assert_eq!(
        deep.validate(""),
        Err(Violation {
            path: "/any".into(),
            message: words.into(),
        })
    );
}

#[test]
fn anything_but_an_object_is_refused_in_the_same_words() {
    // JSON: the schema refuses it, worded as protobuf words bytes that are
    // not an object's text.
    for not_an_object in [json!([1]), json!("{}"), json!(1), json!(true)] {
        let message = documents(json!({ "data": not_an_object }));
        let (json, proto) = verdicts(&message);
        assert_eq!(
            json,
            Err(Violation {
                path: "/data".into(),
                message: "data must be a JSON object".into(),
            }),
            "{message}"
        );
        assert_eq!(proto, None, "serde types {message}");
        let nested = documents(json!({"parts": [{"data": not_an_object}]}));
        assert_eq!(
            verdicts(&nested).0.unwrap_err().path,
            "/parts/0/data",
            "{nested}"
        );
    }
    // Protobuf: bytes that are not a JSON object's UTF-8 text, whatever
    // their size.
    for bytes in [
        b"[1]".as_slice(),
        b"\"{}\"",
        b"1",
        b"",
        b"{",
        b"{} {}",
        b"{\"a\":\"\xff\"}",
        b"\xef\xbb\xbf{}",
    ] {
        for field in ["data", "any"] {
            let mut message = v1::Documents::default();
            let (slot, path) = match field {
                "data" => (&mut message.data, "/data"),
                _ => (&mut message.any, "/any"),
            };
            *slot = Some(bytes.to_vec());
            let decoded = v1::Documents::decode(message.encode_to_vec().as_slice()).unwrap();
            assert_eq!(
                decoded.validate(""),
                Err(Violation {
                    path: path.into(),
                    message: format!("{field} must be a JSON object"),
                }),
                "{bytes:?} in {field}"
            );
        }
        let nested = v1::Documents {
            part: Some(v1::Part {
                data: Some(bytes.to_vec()),
            }),
            ..Default::default()
        };
        assert_eq!(nested.validate("").unwrap_err().path, "/part/data");
    }
    // The text a protobuf sender wrote counts as written (whitespace too),
    // as buf.validate's bytes.max_len counts.
    let spaced = v1::Documents {
        data: Some(br#"{ "a" : [ 1 , 2 ] }"#.to_vec()),
        ..Default::default()
    };
    assert_eq!(
        spaced.validate("").unwrap_err().message,
        "data must be at most 16 bytes of JSON"
    );
    // And goes out in JSON as the object it holds.
    let fitting = v1::Documents {
        data: Some(br#"{"a": [1, 2]}"#.to_vec()),
        ..Default::default()
    };
    assert_eq!(fitting.validate(""), Ok(()));
    assert_eq!(
        serde_json::to_value(envelope::Kind::Documents(fitting)).unwrap(),
        json!({"type": "documents", "parts": [], "data": {"a": [1, 2]}})
    );
}
