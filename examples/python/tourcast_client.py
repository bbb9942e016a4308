"""A binary (protobuf) tourcast client in Python, from the code protoc
generates from proto/ (./generate.sh) and the `websockets` library.

    ./generate.sh
    python tourcast_client.py ws://localhost:8080/ws tour_paris

It connects with the `tourcast.v1.proto` subprotocol, so every frame either
way is a binary `tourcast.v1.ClientMessage` / `ServerMessage` envelope,
subscribes, and prints each update. `json_view()` turns a server message
into tourcast's JSON view (what a JSON connection receives), following the
mapping in proto/README.md; it is not protobuf's canonical JSON.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "gen"))

import websockets  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from google.protobuf.descriptor import FieldDescriptor  # noqa: E402

from tourcast.v1 import client_pb2, server_pb2  # noqa: E402

SUBPROTOCOL = "tourcast.v1.proto"

# The oneof variant ↔ JSON `type` names that are not simply the field name.
JSON_TYPE = {
    "availability_updated": "tour.availability.updated",
    "availability_low": "tour.availability.low",
}


def json_type(message: server_pb2.ServerMessage | client_pb2.ClientMessage) -> str:
    """The JSON `type` of an envelope: its `kind` variant, renamed where needed."""
    variant = message.WhichOneof("kind")
    if variant is None:
        raise ValueError("the envelope sets no variant")
    return JSON_TYPE.get(variant, variant)


def enum_json(field: FieldDescriptor, number: int) -> str:
    """`ERROR_CODE_INVALID_MESSAGE` → `invalid_message`: the enum's name without its prefix, lower case."""
    name = field.enum_type.values_by_number[number].name
    prefix = "".join("_" + c if c.isupper() else c for c in field.enum_type.name).lstrip("_").upper() + "_"
    return name.removeprefix(prefix).lower()


def _view(message) -> dict:
    out: dict = {}
    for field in message.DESCRIPTOR.fields:
        # Optional fields (and messages) appear only when set; plain scalars
        # always do, zero included ("availableSeats": 0), as the gateway sends them.
        if field.has_presence and not message.HasField(field.name):
            continue
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            value = [_view(v) for v in value] if field.is_repeated else _view(value)
        elif field.type == FieldDescriptor.TYPE_ENUM:
            value = enum_json(field, value)
        elif field.is_repeated:
            value = list(value)
        # uint64 stays a number (canonical protobuf JSON would quote it).
        out[field.json_name] = value
    return out


def json_view(message: server_pb2.ServerMessage) -> dict:
    """The tourcast JSON view of a server message: `{"type": …, <the variant's fields>}`.

    Fields are named by their JSON name (camelCase), enums by their short
    lower-case name, 64-bit integers are numbers, unset optional fields are
    left out, and plain scalars are always there, zero included.
    """
    variant = message.WhichOneof("kind")
    return {"type": json_type(message), **_view(getattr(message, variant))}


async def recv(ws) -> server_pb2.ServerMessage:
    frame = await ws.recv()
    if not isinstance(frame, bytes):
        raise TypeError(f"expected a binary frame, got text: {frame!r}")
    return server_pb2.ServerMessage.FromString(frame)


async def send(ws, **variant) -> None:
    """`await send(ws, subscribe=client_pb2.Subscribe(tour_id="tour_paris"))`"""
    await ws.send(client_pb2.ClientMessage(**variant).SerializeToString())


async def main(url: str, tour_id: str, updates: int) -> None:
    async with websockets.connect(url, subprotocols=[SUBPROTOCOL]) as ws:
        hello = await recv(ws)
        print("connected:", json_format.MessageToJson(hello.connection, indent=None))
        await send(ws, subscribe=client_pb2.Subscribe(tour_id=tour_id, request_id="sub-1"))
        seen = 0
        while seen < updates:
            message = await recv(ws)
            print(json_view(message))
            if json_type(message) == "tour.availability.updated":
                seen += 1


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else "ws://localhost:8080/ws"
    tour = sys.argv[2] if len(sys.argv) > 2 else "tour_paris"
    asyncio.run(main(url, tour, updates=int(sys.argv[3]) if len(sys.argv) > 3 else 3))
