//! Bad input: every mistake gets the expected `code`, JSON pointer `path` and
//! echoed `requestId`, the same in JSON and protobuf wherever protobuf can
//! express the mistake, and nothing a client sends can panic the codec.

use proptest::prelude::*;
use prost::Message as _;
use serde_json::Value;
use tourcast::protocol::codec::{Codec, DecodeError, Encoding, encode_json};
use tourcast::protocol::{ClientMessage, v1};

use v1::ErrorCode::{InvalidMessage, UnknownType};

// --- frame builders ------------------------------------------------------

fn envelope(kind: ClientMessage) -> Vec<u8> {
    v1::ClientMessage { kind: Some(kind) }.encode_to_vec()
}

fn pb_ping(request_id: Option<&str>) -> Vec<u8> {
    envelope(ClientMessage::Ping(v1::Ping {
        request_id: request_id.map(str::to_owned),
    }))
}

fn pb_subscribe(
    tour_id: Option<&str>,
    since: Option<(&str, u64)>,
    request_id: Option<&str>,
) -> Vec<u8> {
    envelope(ClientMessage::Subscribe(v1::Subscribe {
        tour_id: tour_id.map(str::to_owned),
        channel: None,
        since: since.map(|(epoch, seq)| v1::StreamPosition {
            epoch: epoch.to_owned(),
            seq,
        }),
        request_id: request_id.map(str::to_owned),
        viewers: None,
    }))
}

fn pb_unsubscribe(tour_id: Option<&str>, request_id: Option<&str>) -> Vec<u8> {
    envelope(ClientMessage::Unsubscribe(v1::Unsubscribe {
        tour_id: tour_id.map(str::to_owned),
        channel: None,
        request_id: request_id.map(str::to_owned),
    }))
}

/// A protobuf varint.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A length-delimited field (wire type 2) with the given number and payload.
fn pb_field(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = varint(number << 3 | 2);
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn pb_refresh(token: &str, request_id: Option<&str>) -> Vec<u8> {
    envelope(ClientMessage::Refresh(v1::Refresh {
        token: token.to_owned(),
        request_id: request_id.map(str::to_owned),
    }))
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

// --- the table -------------------------------------------------------------

/// What a bad frame must produce.
struct Expect {
    code: v1::ErrorCode,
    path: Option<&'static str>,
    request_id: Option<&'static str>,
}

/// One mistake, as a JSON text frame and/or the equivalent protobuf frame.
/// When both are given, both must give exactly `expect`: that is the parity.
struct Case {
    name: &'static str,
    json: Option<Vec<u8>>,
    proto: Option<Vec<u8>>,
    expect: Expect,
}

fn both(name: &'static str, json: &str, proto: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        json: Some(json.as_bytes().to_vec()),
        proto: Some(proto),
        expect,
    }
}

fn json_only(name: &'static str, json: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        json: Some(json.into()),
        proto: None,
        expect,
    }
}

fn proto_only(name: &'static str, proto: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        json: None,
        proto: Some(proto),
        expect,
    }
}

fn invalid(path: &'static str) -> Expect {
    Expect {
        code: InvalidMessage,
        path: Some(path),
        request_id: None,
    }
}

fn invalid_echo(path: &'static str, request_id: &'static str) -> Expect {
    Expect {
        code: InvalidMessage,
        path: Some(path),
        request_id: Some(request_id),
    }
}

/// The frame did not parse at all: no field to point at.
fn unparsable() -> Expect {
    Expect {
        code: InvalidMessage,
        path: None,
        request_id: None,
    }
}

fn unknown_type() -> Expect {
    Expect {
        code: UnknownType,
        path: Some("/type"),
        request_id: None,
    }
}

/// Mistakes both encodings can make: same code, path and requestId echo.
fn parity_cases() -> Vec<Case> {
    let tour65 = long(65);
    let id65 = long(65);
    let epoch65 = long(65);
    let token_too_long = format!("{}.{}.sig", long(4096), long(4092));
    vec![
        // proto3 cannot tell an absent string from an empty one, so "missing"
        // and "empty" are the same protobuf frame, and the same JSON pointer.
        both(
            "subscribe without tourId",
            r#"{"type":"subscribe"}"#,
            pb_subscribe(None, None, None),
            invalid("/tourId"),
        ),
        both(
            "subscribe with empty tourId",
            r#"{"type":"subscribe","tourId":""}"#,
            pb_subscribe(Some(""), None, None),
            invalid("/tourId"),
        ),
        both(
            "subscribe with a 65-character tourId",
            &format!(r#"{{"type":"subscribe","tourId":"{tour65}"}}"#),
            pb_subscribe(Some(&tour65), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId with a space",
            r#"{"type":"subscribe","tourId":"tour paris"}"#,
            pb_subscribe(Some("tour paris"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId starting with an underscore",
            r#"{"type":"subscribe","tourId":"_tour"}"#,
            pb_subscribe(Some("_tour"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId with a slash",
            r#"{"type":"subscribe","tourId":"tour/../paris"}"#,
            pb_subscribe(Some("tour/../paris"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId that is two wildcards",
            r#"{"type":"subscribe","tourId":"**"}"#,
            pb_subscribe(Some("**"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId with a non-ASCII letter",
            r#"{"type":"subscribe","tourId":"tour_é"}"#,
            pb_subscribe(Some("tour_é"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId with a NUL",
            r#"{"type":"subscribe","tourId":"tour\u0000"}"#,
            pb_subscribe(Some("tour\0"), None, None),
            invalid("/tourId"),
        ),
        both(
            "tourId with a trailing newline",
            r#"{"type":"subscribe","tourId":"tour_paris\n"}"#,
            pb_subscribe(Some("tour_paris\n"), None, None),
            invalid("/tourId"),
        ),
        both(
            "unsubscribe without tourId",
            r#"{"type":"unsubscribe"}"#,
            pb_unsubscribe(None, None),
            invalid("/tourId"),
        ),
        both(
            "unsubscribe with a bad tourId",
            r#"{"type":"unsubscribe","tourId":"tour;drop"}"#,
            pb_unsubscribe(Some("tour;drop"), None),
            invalid("/tourId"),
        ),
        both(
            "a bad tourId echoes the requestId",
            r#"{"type":"subscribe","tourId":"","requestId":"sub-1"}"#,
            pb_subscribe(Some(""), None, Some("sub-1")),
            invalid_echo("/tourId", "sub-1"),
        ),
        both(
            "a bad unsubscribe echoes the requestId",
            r#"{"type":"unsubscribe","tourId":"a b","requestId":"u-1"}"#,
            pb_unsubscribe(Some("a b"), Some("u-1")),
            invalid_echo("/tourId", "u-1"),
        ),
        // Too long to echo: the error does not repeat an oversized token.
        both(
            "ping with a 65-character requestId",
            &format!(r#"{{"type":"ping","requestId":"{id65}"}}"#),
            pb_ping(Some(&id65)),
            invalid("/requestId"),
        ),
        both(
            "subscribe with a 65-character requestId",
            &format!(r#"{{"type":"subscribe","tourId":"tour_paris","requestId":"{id65}"}}"#),
            pb_subscribe(Some("tour_paris"), None, Some(&id65)),
            invalid("/requestId"),
        ),
        // Short enough to echo, so it is echoed even though it is refused.
        both(
            "requestId with a space",
            r#"{"type":"ping","requestId":"r 1"}"#,
            pb_ping(Some("r 1")),
            invalid_echo("/requestId", "r 1"),
        ),
        both(
            "empty requestId",
            r#"{"type":"ping","requestId":""}"#,
            pb_ping(Some("")),
            invalid_echo("/requestId", ""),
        ),
        both(
            "since with an empty epoch",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"","seq":41}}"#,
            pb_subscribe(Some("tour_paris"), Some(("", 41)), None),
            invalid("/since/epoch"),
        ),
        both(
            "since without an epoch",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"seq":41}}"#,
            pb_subscribe(Some("tour_paris"), Some(("", 41)), None),
            invalid("/since/epoch"),
        ),
        both(
            "since.epoch with a space",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e 1","seq":41}}"#,
            pb_subscribe(Some("tour_paris"), Some(("e 1", 41)), None),
            invalid("/since/epoch"),
        ),
        both(
            "since.epoch too long",
            &format!(
                r#"{{"type":"subscribe","tourId":"tour_paris","since":{{"epoch":"{epoch65}","seq":41}},"requestId":"r2"}}"#
            ),
            pb_subscribe(Some("tour_paris"), Some((&epoch65, 41)), Some("r2")),
            invalid_echo("/since/epoch", "r2"),
        ),
        both(
            "refresh without a token",
            r#"{"type":"refresh","requestId":"rf-1"}"#,
            pb_refresh("", Some("rf-1")),
            invalid_echo("/token", "rf-1"),
        ),
        both(
            "refresh with a token that is not a JWT",
            r#"{"type":"refresh","token":"Bearer abc"}"#,
            pb_refresh("Bearer abc", None),
            invalid("/token"),
        ),
        both(
            "refresh with an 8193-character token",
            &format!(r#"{{"type":"refresh","token":"{token_too_long}"}}"#),
            pb_refresh(&token_too_long, None),
            invalid("/token"),
        ),
        // A variant this server does not know: in JSON a new `type`, in
        // protobuf a oneof member with a field number from a newer protocol,
        // which prost skips, leaving no variant set.
        both(
            "unknown type",
            r#"{"type":"hello"}"#,
            pb_field(99, &[]),
            unknown_type(),
        ),
        both(
            "unknown type that looks like a server message",
            r#"{"type":"pong","timestamp":"2025-01-08T10:30:00.000Z"}"#,
            pb_field(15, &pb_field(2, b"2025-01-08T10:30:00.000Z")),
            unknown_type(),
        ),
        // Frames that do not parse at all: no pointer to give.
        both(
            "truncated frame",
            r#"{"type":"subscribe","tourId":"tour_pa"#,
            pb_subscribe(Some("tour_paris"), None, None)[..6].to_vec(),
            unparsable(),
        ),
    ]
}

/// Mistakes only JSON can make (protobuf's types and schema rule them out).
fn json_only_cases() -> Vec<Case> {
    let mut deep_array = "[".repeat(100_000);
    deep_array.push_str(&"]".repeat(100_000));
    let deep_inside = format!(r#"{{"type":"ping","x":{deep_array}}}"#);
    let mut deep_objects = r#"{"a":"#.repeat(100_000);
    deep_objects.push('1');
    deep_objects.push_str(&"}".repeat(100_000));
    vec![
        json_only(
            "missing type",
            r#"{"tourId":"tour_paris"}"#,
            invalid("/type"),
        ),
        json_only(
            "missing type echoes the requestId",
            r#"{"tourId":"tour_paris","requestId":"r1"}"#,
            invalid_echo("/type", "r1"),
        ),
        json_only("type is a number", r#"{"type":5}"#, invalid("/type")),
        json_only("type is null", r#"{"type":null}"#, invalid("/type")),
        json_only(
            "type is an object",
            r#"{"type":{"name":"ping"}}"#,
            invalid("/type"),
        ),
        json_only(
            "type in the wrong case",
            r#"{"type":"PING"}"#,
            unknown_type(),
        ),
        json_only(
            "unknown type echoes the requestId",
            r#"{"type":"hello","requestId":"r1"}"#,
            Expect {
                code: UnknownType,
                path: Some("/type"),
                request_id: Some("r1"),
            },
        ),
        json_only("empty object", "{}", invalid("/type")),
        json_only("a JSON array", r#"[{"type":"ping"}]"#, invalid("")),
        json_only("a JSON string", r#""ping""#, invalid("")),
        json_only("a JSON number", "42", invalid("")),
        json_only("JSON null", "null", invalid("")),
        json_only("empty text frame", "", unparsable()),
        json_only("whitespace only", " \n\t", unparsable()),
        json_only("trailing comma", r#"{"type":"ping",}"#, unparsable()),
        json_only("single quotes", "{'type':'ping'}", unparsable()),
        json_only(
            "two messages in one frame",
            r#"{"type":"ping"}{"type":"ping"}"#,
            unparsable(),
        ),
        json_only("a lone surrogate", r#"{"type":"\ud800"}"#, unparsable()),
        json_only(
            "invalid UTF-8 in a text frame",
            b"{\"type\":\"ping\",\"requestId\":\"\xff\xfe\"}".to_vec(),
            unparsable(),
        ),
        json_only(
            "unknown property",
            r#"{"type":"ping","color":"blue"}"#,
            invalid("/color"),
        ),
        json_only(
            "unknown property next to a valid subscribe",
            r#"{"type":"subscribe","tourId":"tour_paris","tourName":"Paris City Tour","requestId":"r3"}"#,
            invalid_echo("/tourName", "r3"),
        ),
        json_only(
            "unknown property inside since",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":41,"at":"now"}}"#,
            invalid("/since/at"),
        ),
        json_only(
            "tourId is a number",
            r#"{"type":"subscribe","tourId":5}"#,
            invalid("/tourId"),
        ),
        json_only(
            "tourId is null",
            r#"{"type":"subscribe","tourId":null,"requestId":"r4"}"#,
            invalid_echo("/tourId", "r4"),
        ),
        json_only(
            "tourId is an array",
            r#"{"type":"unsubscribe","tourId":["tour_paris"]}"#,
            invalid("/tourId"),
        ),
        // A requestId that is not a string cannot be echoed.
        json_only(
            "requestId is a number",
            r#"{"type":"ping","requestId":7}"#,
            invalid("/requestId"),
        ),
        json_only(
            "requestId is null",
            r#"{"type":"ping","requestId":null}"#,
            invalid("/requestId"),
        ),
        json_only(
            "since is a string",
            r#"{"type":"subscribe","tourId":"tour_paris","since":"e1:41"}"#,
            invalid("/since"),
        ),
        json_only(
            "since is null",
            r#"{"type":"subscribe","tourId":"tour_paris","since":null}"#,
            invalid("/since"),
        ),
        json_only(
            "since without seq",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1"}}"#,
            invalid("/since/seq"),
        ),
        json_only(
            "seq is negative",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":-1}}"#,
            invalid("/since/seq"),
        ),
        json_only(
            "seq is a string",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":"41"}}"#,
            invalid("/since/seq"),
        ),
        json_only(
            "seq is a fraction",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":41.5}}"#,
            invalid("/since/seq"),
        ),
        // JSON Schema calls 41.0 an integer; the typed field is a u64 and
        // refuses it, and the error must still point at the field.
        json_only(
            "seq written as 41.0",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":41.0},"requestId":"r5"}"#,
            invalid_echo("/since/seq", "r5"),
        ),
        json_only(
            "seq is 2^64, one past u64::MAX",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":18446744073709551616}}"#,
            invalid("/since/seq"),
        ),
        json_only(
            "seq is 1e19 in exponent form",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":1e19}}"#,
            invalid("/since/seq"),
        ),
        json_only(
            "seq is a 400-digit number",
            format!(
                r#"{{"type":"subscribe","tourId":"tour_paris","since":{{"epoch":"e1","seq":{}}}}}"#,
                "9".repeat(400)
            ),
            unparsable(),
        ),
        json_only(
            "seq is 1e400, beyond f64",
            r#"{"type":"subscribe","tourId":"tour_paris","since":{"epoch":"e1","seq":1e400}}"#,
            unparsable(),
        ),
        json_only("100k nested arrays", deep_array, unparsable()),
        json_only(
            "100k nested arrays inside a ping",
            deep_inside,
            unparsable(),
        ),
        json_only("100k nested objects", deep_objects, unparsable()),
        json_only(
            "shallow nesting in an unknown property",
            format!(
                r#"{{"type":"ping","x":{}1{}}}"#,
                "[".repeat(50),
                "]".repeat(50)
            ),
            invalid("/x"),
        ),
    ]
}

/// Mistakes (and non-mistakes) that only protobuf frames can make.
fn proto_only_cases() -> Vec<Case> {
    // Field 1 of Subscribe (tour_id) sent as a varint instead of a string.
    let wrong_wire_type = pb_field(2, &[0x08, 0x05]);
    // A string field that is not UTF-8: prost refuses it.
    let bad_utf8 = pb_field(2, &pb_field(1, b"tour_\xff"));
    // A length prefix far beyond the frame.
    let mut huge_length = varint(2 << 3 | 2);
    huge_length.extend(varint(u64::MAX >> 1));
    // A varint longer than ten bytes.
    let mut overlong_varint = vec![0x08];
    overlong_varint.extend([0xff; 11]);
    // 100k nested groups in an unknown field: prost's recursion limit stops it.
    let mut deep_groups = Vec::new();
    for _ in 0..100_000 {
        deep_groups.extend(varint(15 << 3 | 3));
    }
    for _ in 0..100_000 {
        deep_groups.extend(varint(15 << 3 | 4));
    }
    let mut nested_deep_groups = Vec::new();
    for _ in 0..100_000 {
        nested_deep_groups.extend(varint(15 << 3 | 3));
    }
    vec![
        // An empty envelope is JSON's `{}`: the `type` is missing. An
        // envelope whose only fields are unknown names a variant this server
        // does not know: JSON's unknown `type`.
        proto_only("empty frame: no variant", Vec::new(), invalid("/type")),
        proto_only(
            "only unknown envelope fields: no variant",
            [pb_field(20, b"x"), pb_field(21, b"y")].concat(),
            unknown_type(),
        ),
        proto_only(
            "tourId with the wrong wire type",
            wrong_wire_type,
            unparsable(),
        ),
        proto_only("tourId that is not UTF-8", bad_utf8, unparsable()),
        proto_only("length prefix beyond the frame", huge_length, unparsable()),
        proto_only("overlong varint", overlong_varint, unparsable()),
        proto_only("a single stray byte", vec![0xff], unparsable()),
        proto_only("field number zero", vec![0x02, 0x00], unparsable()),
        proto_only("100k nested groups", deep_groups, unparsable()),
        proto_only(
            "100k unterminated nested groups",
            nested_deep_groups,
            unparsable(),
        ),
        proto_only(
            "a JSON text in a binary frame",
            br#"{"type":"ping"}"#.to_vec(),
            unparsable(),
        ),
    ]
}

/// Decodes one frame of a case; describes every way it missed the expectation.
fn check(
    codec: &Codec,
    case: &Case,
    encoding: Encoding,
    frame: &[u8],
) -> Result<DecodeError, String> {
    let label = format!("{} ({encoding:?})", case.name);
    let error = match codec.decode(encoding, frame) {
        Ok(message) => return Err(format!("{label}: accepted as {message:?}")),
        Err(error) => error,
    };
    let mut problems = Vec::new();
    if error.code != case.expect.code {
        problems.push(format!(
            "code {:?}, expected {:?}",
            error.code, case.expect.code
        ));
    }
    if error.path.as_deref() != case.expect.path {
        problems.push(format!(
            "path {:?}, expected {:?}",
            error.path, case.expect.path
        ));
    }
    if error.request_id.as_deref() != case.expect.request_id {
        problems.push(format!(
            "requestId {:?}, expected {:?}",
            error.request_id, case.expect.request_id
        ));
    }
    // The reply tells a human what was wrong, briefly, and is a valid
    // `error` message in the SPEC's shape.
    if error.message.is_empty() || error.message.chars().count() > 300 {
        problems.push(format!("message {:?}", error.message));
    }
    let reply: Value =
        serde_json::from_str(std::str::from_utf8(&encode_json(&error.to_reply())).unwrap())
            .map_err(|e| format!("{label}: reply is not JSON: {e}"))?;
    if reply["type"] != "error" {
        problems.push(format!("reply {reply}"));
    }
    if problems.is_empty() {
        Ok(error)
    } else {
        Err(format!(
            "{label}: {} ({})",
            problems.join("; "),
            error.message
        ))
    }
}

/// Runs every case, then reports all failures at once.
fn run_table(cases: &[Case]) {
    let codec = Codec::new().unwrap();
    let mut failures = Vec::new();
    for case in cases {
        let from_json = case
            .json
            .as_ref()
            .map(|frame| check(&codec, case, Encoding::Json, frame));
        let from_proto = case
            .proto
            .as_ref()
            .map(|frame| check(&codec, case, Encoding::Proto, frame));
        for result in [&from_json, &from_proto].into_iter().flatten() {
            if let Err(failure) = result {
                failures.push(failure.clone());
            }
        }
        // Belt and braces: when both encodings are given, they agree.
        if let (Some(Ok(a)), Some(Ok(b))) = (&from_json, &from_proto)
            && (a.code, &a.path, &a.request_id) != (b.code, &b.path, &b.request_id)
        {
            failures.push(format!("{}: JSON {a:?} vs protobuf {b:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_same_mistake_gives_the_same_error_in_json_and_protobuf() {
    let cases = parity_cases();
    assert!(cases.len() >= 25, "the parity table shrank");
    assert!(cases.iter().all(|c| c.json.is_some() && c.proto.is_some()));
    run_table(&cases);
}

#[test]
fn json_only_mistakes_give_the_expected_error() {
    run_table(&json_only_cases());
}

#[test]
fn protobuf_only_mistakes_give_the_expected_error() {
    run_table(&proto_only_cases());
}

#[test]
fn protobuf_unknown_fields_are_accepted() {
    let codec = Codec::new().unwrap();
    let expected = ClientMessage::Subscribe(v1::Subscribe {
        tour_id: Some("tour_paris".into()),
        since: None,
        request_id: Some("r1".into()),
        channel: None,
        viewers: None,
    });

    // An unknown field inside Subscribe.
    let subscribe = [
        pb_field(1, b"tour_paris"),
        pb_field(3, b"r1"),
        pb_field(15, b"from the future"),
        varint(16 << 3),
        varint(7),
    ]
    .concat();
    let frame = pb_field(2, &subscribe);
    assert_eq!(codec.decode_proto(&frame).unwrap(), expected);

    // An unknown field in the envelope next to a known variant.
    let frame = [pb_field(2, &pb_field(1, b"tour_paris")), pb_field(30, b"?")].concat();
    let message = codec.decode_proto(&frame).unwrap();
    assert!(
        matches!(message, ClientMessage::Subscribe(s) if s.tour_id.as_deref() == Some("tour_paris"))
    );

    // The same frame's rules still apply to the known fields.
    let frame = pb_field(2, &[pb_field(1, b""), pb_field(15, b"x")].concat());
    let error = codec.decode_proto(&frame).unwrap_err();
    assert_eq!(
        (error.code, error.path.as_deref()),
        (InvalidMessage, Some("/tourId"))
    );
}

/// The edges of each rule are accepted, in both encodings.
#[test]
fn boundary_values_are_accepted_in_both_encodings() {
    let codec = Codec::new().unwrap();
    let tour64 = long(64);
    let id64 = long(64);
    let cases: Vec<(String, Vec<u8>)> = vec![
        (
            format!(r#"{{"type":"subscribe","tourId":"{tour64}"}}"#),
            pb_subscribe(Some(&tour64), None, None),
        ),
        (
            format!(r#"{{"type":"ping","requestId":"{id64}"}}"#),
            pb_ping(Some(&id64)),
        ),
        (
            r#"{"type":"subscribe","tourId":"T"}"#.into(),
            pb_subscribe(Some("T"), None, None),
        ),
        (
            r#"{"type":"subscribe","tourId":"tour.paris:2025-01_a"}"#.into(),
            pb_subscribe(Some("tour.paris:2025-01_a"), None, None),
        ),
        (
            r#"{"type":"ping","requestId":"~!{}"}"#.into(),
            pb_ping(Some("~!{}")),
        ),
        (
            r#"{"type":"subscribe","tourId":"*","since":{"epoch":"e","seq":18446744073709551615}}"#
                .into(),
            pb_subscribe(Some("*"), Some(("e", u64::MAX)), None),
        ),
        (
            r#"{"type":"subscribe","tourId":"*","since":{"epoch":"e","seq":0}}"#.into(),
            pb_subscribe(Some("*"), Some(("e", 0)), None),
        ),
    ];
    for (json, proto) in cases {
        let a = codec
            .decode(Encoding::Json, json.as_bytes())
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        let b = codec
            .decode(Encoding::Proto, &proto)
            .unwrap_or_else(|e| panic!("{json} as protobuf: {e}"));
        assert_eq!(a, b, "{json}");
    }
}

/// A requestId is echoed whenever it can be read, whatever else is wrong.
#[test]
fn request_id_is_echoed_when_readable() {
    let codec = Codec::new().unwrap();
    for text in [
        r#"{"type":"subscribe","tourId":5,"requestId":"r1"}"#,
        r#"{"requestId":"r1","type":"nope"}"#,
        r#"{"type":"ping","requestId":"r1","extra":true}"#,
        r#"{"requestId":"r1"}"#,
        r#"{"type":"subscribe","tourId":"a","since":{"epoch":"","seq":1},"requestId":"r1"}"#,
    ] {
        let error = codec.decode_json(text).unwrap_err();
        assert_eq!(error.request_id.as_deref(), Some("r1"), "{text}");
        let reply: Value =
            serde_json::from_str(std::str::from_utf8(&encode_json(&error.to_reply())).unwrap())
                .unwrap();
        assert_eq!(reply["requestId"], "r1", "{text}");
    }
}

/// Several mistakes at once: the report names one of them, and protobuf and
/// JSON agree on which one for the common case of a bad tourId next to a bad
/// requestId.
#[test]
fn several_mistakes_report_one() {
    let codec = Codec::new().unwrap();
    let id65 = long(65);
    let json = format!(r#"{{"type":"subscribe","tourId":"","requestId":"{id65}"}}"#);
    let from_json = codec.decode_json(&json).unwrap_err();
    let from_proto = codec
        .decode_proto(&pb_subscribe(Some(""), None, Some(&id65)))
        .unwrap_err();
    for error in [&from_json, &from_proto] {
        assert_eq!(error.code, InvalidMessage);
        assert!(
            matches!(error.path.as_deref(), Some("/tourId" | "/requestId")),
            "{error:?}"
        );
        assert_eq!(error.request_id, None);
    }
}

/// An unknown `type` is quoted in the message, but never at full length.
#[test]
fn unknown_type_message_is_bounded() {
    let codec = Codec::new().unwrap();
    let text = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
    let error = codec.decode_json(&text).unwrap_err();
    assert_eq!(error.code, UnknownType);
    assert!(error.message.len() < 200, "{}", error.message);
}

// --- no panics, whatever the bytes -----------------------------------------

/// JSON-ish text: mostly the protocol's own vocabulary, so that the generator
/// reaches the validator and the typed conversion, not only the parser.
fn jsonish() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"type\"".to_string()),
        Just("\"ping\"".to_string()),
        Just("\"subscribe\"".to_string()),
        Just("\"unsubscribe\"".to_string()),
        Just("\"tourId\"".to_string()),
        Just("\"requestId\"".to_string()),
        Just("\"since\"".to_string()),
        Just("\"epoch\"".to_string()),
        Just("\"seq\"".to_string()),
        Just("\"refresh\"".to_string()),
        Just("\"token\"".to_string()),
        Just("\"a.b.c\"".to_string()),
        Just("null".to_string()),
        Just("true".to_string()),
        Just("-1".to_string()),
        Just("1e400".to_string()),
        Just("18446744073709551616".to_string()),
        Just("\"\\ud800\"".to_string()),
        "\"[a-z_*]{0,70}\"",
        "-?[0-9]{1,25}(\\.[0-9]{1,3})?",
        any::<String>(),
    ];
    prop::collection::vec(atom, 0..40).prop_map(|parts| parts.concat())
}

/// Structurally valid messages with arbitrary field values.
fn shaped_json() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("ping"),
            Just("subscribe"),
            Just("unsubscribe"),
            Just("refresh"),
            Just("other")
        ],
        any::<String>(),
        prop::option::of(any::<String>()),
        prop::option::of((any::<String>(), any::<i128>())),
    )
        .prop_map(|(kind, tour_id, request_id, since)| {
            let mut object = serde_json::Map::new();
            object.insert("type".into(), kind.into());
            // A refresh carries a token where the others carry a tourId.
            if kind == "refresh" {
                object.insert("token".into(), tour_id.into());
            } else {
                object.insert("tourId".into(), tour_id.into());
            }
            if let Some(id) = request_id {
                object.insert("requestId".into(), id.into());
            }
            if let Some((epoch, seq)) = since {
                let seq: Value = serde_json::from_str(&seq.to_string()).unwrap_or(Value::Null);
                object.insert(
                    "since".into(),
                    serde_json::json!({"epoch": epoch, "seq": seq}),
                );
            }
            Value::Object(object).to_string()
        })
}

/// Protobuf-ish bytes: valid frames with random mutations, and raw noise.
fn protobuf_ish() -> impl Strategy<Value = Vec<u8>> {
    let valid = (
        any::<String>(),
        prop::option::of((any::<String>(), any::<u64>())),
        prop::option::of(any::<String>()),
    )
        .prop_map(|(tour, since, id)| {
            pb_subscribe(
                Some(&tour),
                since.as_ref().map(|(e, s)| (e.as_str(), *s)),
                id.as_deref(),
            )
        });
    let mutated = (valid.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(mut bytes, at, byte)| {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes
        },
    );
    let truncated = (valid.clone(), any::<prop::sample::Index>()).prop_map(|(bytes, at)| {
        let cut = at.index(bytes.len() + 1);
        bytes[..cut].to_vec()
    });
    prop_oneof![
        valid,
        mutated,
        truncated,
        prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// Either decoder on any input returns Ok or a well-formed error; never panics.
fn decode_never_panics(codec: &Codec, encoding: Encoding, frame: &[u8]) {
    match codec.decode(encoding, frame) {
        Ok(message) => {
            // Whatever is accepted re-encodes and decodes to itself in both encodings.
            let json = serde_json::to_string(&message).unwrap();
            assert_eq!(codec.decode_json(&json).unwrap(), message);
            let proto = envelope(message.clone());
            assert_eq!(codec.decode_proto(&proto).unwrap(), message);
        }
        Err(error) => {
            assert!(!error.message.is_empty());
            if let Some(id) = &error.request_id {
                assert!(id.len() <= 64);
            }
            let _ = String::from_utf8(encode_json(&error.to_reply()).to_vec()).unwrap();
        }
    }
}

proptest! {
    // Bounded so that the whole file runs in a few seconds in debug builds.
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let codec = codec();
        decode_never_panics(codec, Encoding::Json, &bytes);
        decode_never_panics(codec, Encoding::Proto, &bytes);
    }

    #[test]
    fn jsonish_text_never_panics(text in jsonish()) {
        let codec = codec();
        decode_never_panics(codec, Encoding::Json, text.as_bytes());
        decode_never_panics(codec, Encoding::Proto, text.as_bytes());
    }

    #[test]
    fn shaped_json_never_panics(text in shaped_json()) {
        decode_never_panics(codec(), Encoding::Json, text.as_bytes());
    }

    #[test]
    fn protobuf_ish_bytes_never_panic(bytes in protobuf_ish()) {
        decode_never_panics(codec(), Encoding::Proto, &bytes);
    }
}

/// One codec for all property cases: compiling the validators is the slow part.
fn codec() -> &'static Codec {
    static CODEC: std::sync::OnceLock<Codec> = std::sync::OnceLock::new();
    CODEC.get_or_init(|| Codec::new().unwrap())
}
