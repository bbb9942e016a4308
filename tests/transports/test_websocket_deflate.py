"""permessage-deflate with a client nobody here wrote: the `websockets`
library (PyPI), which offers the extension by default and compresses its
own messages.

- the extension is agreed with server_no_context_takeover and
  client_no_context_takeover;
- the library's compressed messages (a ping, a subscribe) are understood,
  and the server's (a snapshot, inflated by the library) are the same JSON
  a client without the extension receives;
- COMPRESSION_LEVEL=0 turns it off: the offer is declined, and the same
  client is served plain.
"""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate


async def next_of(ws, kind: str) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["type"] == kind:
            return message


async def snapshot_and_pong(url: str, **options) -> tuple[list, dict, dict]:
    async with connect(url, **options) as ws:
        await next_of(ws, "connection")
        # Long enough that the library compresses it (and the server must inflate it).
        await ws.send(json.dumps({"type": "ping", "requestId": "p" * 60}))
        pong = await next_of(ws, "pong")
        await ws.send(json.dumps({"type": "subscribe", "tourId": "*", "requestId": "all"}))
        snapshot = await next_of(ws, "snapshot")
        return ws.protocol.extensions, ws.response.headers, {"pong": pong, "snapshot": snapshot}


def test_deflate_is_agreed_and_both_directions_are_understood(gateway):
    url = f"ws://127.0.0.1:{gateway}/ws"
    extensions, headers, got = asyncio.run(snapshot_and_pong(url))
    assert headers["Sec-WebSocket-Extensions"] == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    )
    (deflate,) = extensions
    assert isinstance(deflate, PerMessageDeflate)
    assert deflate.remote_no_context_takeover and deflate.local_no_context_takeover
    assert got["pong"]["requestId"] == "p" * 60

    plain_extensions, plain_headers, plain = asyncio.run(snapshot_and_pong(url, compression=None))
    assert plain_extensions == [] and "Sec-WebSocket-Extensions" not in plain_headers
    tours = lambda s: sorted(t["tourId"] for t in s["tours"])  # noqa: E731
    assert tours(got["snapshot"]) == tours(plain["snapshot"]) == ["tour_london", "tour_paris", "tour_rome"]
    assert got["snapshot"]["epoch"] == plain["snapshot"]["epoch"]


def test_a_narrow_server_window_is_honoured(gateway):
    url = f"ws://127.0.0.1:{gateway}/ws"
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=9)
    extensions, headers, got = asyncio.run(snapshot_and_pong(url, extensions=[factory], compression=None))
    assert headers["Sec-WebSocket-Extensions"].endswith("server_max_window_bits=9")
    assert got["snapshot"]["type"] == "snapshot"


def test_compression_level_zero_declines_the_offer(gateway_without_compression):
    url = f"ws://127.0.0.1:{gateway_without_compression}/ws"
    extensions, headers, got = asyncio.run(snapshot_and_pong(url))
    assert extensions == [] and "Sec-WebSocket-Extensions" not in headers
    assert got["pong"]["requestId"] == "p" * 60
