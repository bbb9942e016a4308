//! What the gateway binds by default is what the contract tells publishers:
//! its default binding keys are the routing keys the proto declares
//! (`(tourcast.v1.routing_key)`, which `schemas/asyncapi.yaml` lists as
//! channels), and its default exchange is the one the document names. Read
//! from `--help`, as an operator would, so the check does not depend on
//! where the gateway keeps its settings.

use std::process::Command;

use tourcast::protocol::v1::{AvailabilityEvent, BookingEvent, RoomEvent};

fn help() -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tourcast"))
        .arg("--help")
        .output()
        .expect("the gateway runs");
    assert!(output.status.success());
    // clap wraps long lines: compare words, not layout.
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_default_binding_keys_are_the_proto_routing_keys() {
    let keys = [
        AvailabilityEvent::ROUTING_KEYS,
        BookingEvent::ROUTING_KEYS,
        RoomEvent::ROUTING_KEYS,
    ]
    .concat();
    assert_eq!(keys.len(), 5);
    let expected = format!(
        "[env: RABBITMQ_BINDING_KEYS=] [default: {}]",
        keys.join(",")
    );
    let help = help();
    assert!(
        help.contains(&expected),
        "{expected} not in --help:\n{help}"
    );
}

#[test]
fn the_default_exchange_is_the_asyncapi_documents() {
    let path = format!("{}/schemas/asyncapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let document = std::fs::read_to_string(path).unwrap();
    let exchange = regex::Regex::new(r"exchange:\s+name: (\S+)")
        .unwrap()
        .captures(&document)
        .expect("the document names an exchange")[1]
        .to_string();
    let expected = format!("[env: RABBITMQ_EXCHANGE=] [default: {exchange}]");
    let help = help();
    assert!(
        help.contains(&expected),
        "{expected} not in --help:\n{help}"
    );
}
