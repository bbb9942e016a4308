"""Generates the protobuf code from proto/ (./generate.sh) and starts the real
gateway binary (TOURCAST_BIN, default target/debug/tourcast) in `--demo`
mode on a free port, with a booking every 200 ms."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

subprocess.run(["bash", str(HERE / "generate.sh")], check=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
sys.path.insert(0, str(HERE / "gen"))


@dataclass
class Gateway:
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


@pytest.fixture(scope="session")
def gateway():
    binary = os.environ.get("TOURCAST_BIN", str(ROOT / "target" / "debug" / "tourcast"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [binary, "--demo", "--demo-interval", "200ms", "--bind", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(args + ["--shutdown-grace", "1s"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"the gateway did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
    yield Gateway(port)
    process.terminate()
    process.wait(timeout=10)
