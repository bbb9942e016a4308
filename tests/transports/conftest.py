"""A `tourcast --demo` gateway for the transport tests (target/debug/tourcast,
or TOURCAST_BIN), on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_gateway(*extra: str):
    binary = os.environ.get("TOURCAST_BIN", str(ROOT / "target" / "debug" / "tourcast"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--demo", "--demo-interval", "200ms", "--bind", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*args, "--shutdown-grace", "1s", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the gateway did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway():
    process, port = start_gateway()
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def gateway_without_compression():
    process, port = start_gateway("--compression-level", "0")
    yield port
    process.terminate()
    process.wait(timeout=10)
