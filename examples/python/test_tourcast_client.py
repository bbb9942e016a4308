"""The Python binary client against the real gateway binary (`--demo`, its
own port): protobuf frames both ways, a live update, and errors with the
same code and path as over JSON. Run: `pytest examples/python` (conftest.py
generates the protobuf code and starts the gateway)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets

import tourcast_client as tc
from tourcast.v1 import client_pb2, server_pb2


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def until(ws, wanted: str) -> server_pb2.ServerMessage:
    while True:
        message = await tc.recv(ws)
        if tc.json_type(message) == wanted:
            return message


def test_subscribe_then_a_live_update_over_protobuf(gateway):
    async def scenario():
        async with websockets.connect(gateway.url, subprotocols=[tc.SUBPROTOCOL]) as ws:
            assert ws.subprotocol == "tourcast.v1.proto"
            hello = await tc.recv(ws)
            assert tc.json_type(hello) == "connection"
            assert hello.connection.encoding == server_pb2.ENCODING_PROTO
            assert tc.json_view(hello)["encoding"] == "proto"

            await tc.send(ws, subscribe=client_pb2.Subscribe(tour_id="tour_paris", request_id="sub-1"))
            subscribed = await tc.recv(ws)
            assert tc.json_view(subscribed) == {"type": "subscribed", "tourId": "tour_paris", "requestId": "sub-1"}
            snapshot = await tc.recv(ws)
            assert tc.json_type(snapshot) == "snapshot"
            [paris] = snapshot.snapshot.tours
            assert (paris.tour_id, paris.tour_name, paris.max_group_size) == ("tour_paris", "Paris City Tour", 20)

            update = await until(ws, "tour.availability.updated")
            assert update.availability_updated.data.tour_id == "tour_paris"
            assert update.availability_updated.seq > paris.seq
            view = tc.json_view(update)
            assert isinstance(view["seq"], int) and view["data"]["tourId"] == "tour_paris"

            await tc.send(ws, ping=client_pb2.Ping(request_id="p-1"))
            pong = await until(ws, "pong")
            assert pong.pong.request_id == "p-1"

    run(scenario())


def test_encoding_chosen_by_query_string(gateway):
    async def scenario():
        async with websockets.connect(gateway.url + "?encoding=proto") as ws:
            assert (await tc.recv(ws)).connection.encoding == server_pb2.ENCODING_PROTO

    run(scenario())


async def error_over_protobuf(url: str, **variant) -> server_pb2.ServerMessage:
    async with websockets.connect(url, subprotocols=[tc.SUBPROTOCOL]) as ws:
        await tc.recv(ws)  # connection
        await tc.send(ws, **variant)
        return await until(ws, "error")


async def error_over_json(url: str, message: dict) -> dict:
    async with websockets.connect(url, subprotocols=["tourcast.v1.json"]) as ws:
        json.loads(await ws.recv())  # connection
        await ws.send(json.dumps(message))
        while True:
            reply = json.loads(await ws.recv())
            if reply["type"] == "error":
                return reply


CASES = [
    (
        {"subscribe": client_pb2.Subscribe(tour_id="", request_id="bad-1")},
        {"type": "subscribe", "tourId": "", "requestId": "bad-1"},
        ("invalid_message", "/tourId"),
    ),
    (
        {"subscribe": client_pb2.Subscribe(tour_id="tour paris")},
        {"type": "subscribe", "tourId": "tour paris"},
        ("invalid_message", "/tourId"),
    ),
    (
        {"subscribe": client_pb2.Subscribe(tour_id="tour_paris", since={"epoch": "e 1", "seq": 41})},
        {"type": "subscribe", "tourId": "tour_paris", "since": {"epoch": "e 1", "seq": 41}},
        ("invalid_message", "/since/epoch"),
    ),
    (
        {"ping": client_pb2.Ping(request_id="r 1")},
        {"type": "ping", "requestId": "r 1"},
        ("invalid_message", "/requestId"),
    ),
]


def test_errors_have_the_same_code_and_path_as_json(gateway):
    async def scenario():
        for variant, as_json, (code, path) in CASES:
            binary = await error_over_protobuf(gateway.url, **variant)
            text = await error_over_json(gateway.url, as_json)
            assert tc.enum_json(server_pb2.ErrorReply.DESCRIPTOR.fields_by_name["code"], binary.error.code) == code
            assert binary.error.code == server_pb2.ERROR_CODE_INVALID_MESSAGE
            assert (text["code"], text["path"]) == (code, path), text
            # The whole reply, converted to the JSON view, is what JSON clients get.
            assert tc.json_view(binary) == text, (tc.json_view(binary), text)

    run(scenario())


def test_json_view_is_not_protobuf_json():
    """The example of proto/README.md: the same update, in both JSON forms."""
    from google.protobuf import json_format

    update = server_pb2.ServerMessage(
        availability_updated=server_pb2.AvailabilityUpdated(
            data=server_pb2.TourAvailability(tour_id="tour_paris", tour_name="Paris City Tour", available_seats=0, max_group_size=20),
            seq=9,
            timestamp="2026-11-23T10:30:04.001Z",
        )
    )
    assert json.loads(json_format.MessageToJson(update)) == {
        "availabilityUpdated": {
            "data": {"tourId": "tour_paris", "tourName": "Paris City Tour", "maxGroupSize": 20},
            "seq": "9",
            "timestamp": "2026-11-23T10:30:04.001Z",
        }
    }
    assert tc.json_view(update) == {
        "type": "tour.availability.updated",
        "data": {"tourId": "tour_paris", "tourName": "Paris City Tour", "availableSeats": 0, "maxGroupSize": 20},
        "seq": 9,
        "timestamp": "2026-11-23T10:30:04.001Z",
    }


def test_the_proto_files_set_the_package_of_every_language(tmp_path):
    """protoc's Java, Kotlin and C# generators put the code where
    proto/README.md says, and the Java compiles against protobuf-java (CI
    installs Debian's protoc and protobuf-java: same version, 3.21); Go's
    import path is the go_package option."""
    import shutil
    import subprocess

    from tourcast.v1 import client_pb2 as c

    protoc, jar = shutil.which("protoc"), Path("/usr/share/java/protobuf.jar")
    assert protoc and jar.exists() and shutil.which("javac"), "needs protoc, protobuf-java and javac (apt: protobuf-compiler libprotobuf-java)"
    proto = Path(tc.__file__).resolve().parents[2] / "proto"
    # buf/validate, which the tourcast files import, is generated and compiled with them.
    files = [str(proto / "buf" / "validate" / "validate.proto")]
    files += sorted(str(p) for p in (proto / "tourcast" / "v1").glob("*.proto"))
    out = {lang: tmp_path / lang for lang in ("java", "kotlin", "csharp")}
    for path in out.values():
        path.mkdir()
    subprocess.run([protoc, f"-I{proto}"] + [f"--{lang}_out={path}" for lang, path in out.items()] + files, check=True)
    java = out["java"] / "dev" / "tourcast" / "v1"
    for name in ("ClientMessage.java", "ServerMessage.java", "Subscribe.java", "ErrorCode.java", "ClientProto.java"):
        assert (java / name).is_file(), sorted(p.name for p in java.iterdir())
    assert "package dev.tourcast.v1;" in (java / "Subscribe.java").read_text()
    subprocess.run(
        ["javac", "-nowarn", "-cp", str(jar), "-d", str(tmp_path / "classes")]
        + [str(p) for p in out["java"].rglob("*.java")],
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "classes" / "dev" / "tourcast" / "v1" / "ClientMessage.class").is_file()
    assert (out["kotlin"] / "dev" / "tourcast" / "v1" / "SubscribeKt.kt").is_file()
    assert "namespace Tourcast.V1" in (out["csharp"] / "Client.cs").read_text()
    options = c.DESCRIPTOR.GetOptions()
    assert options.go_package == "tourcast.dev/gen/go/tourcast/v1;tourcastv1"
    assert (options.java_package, options.java_multiple_files) == ("dev.tourcast.v1", True)
