"""Generic validators agree with the gateway on every fixture.

The fixtures (fixtures.json: the SPEC's examples and messages that must be
refused, each refusal with the `code` and `path` of the server's `error`
reply) are checked three ways, as other teams' CI would check them:

- ajv-cli, run exactly as a user types it: `ajv validate -s <schema> -d <files>`,
  no flags (its defaults: draft-07, strict mode);
- python-jsonschema, with the validator its `$schema` selects;
- the real gateway binary: each client fixture sent over a JSON WebSocket.

Every verdict must agree, and for every refused client message the field
ajv and python-jsonschema point at must be the one the server names. A
schema error points at the parent of a missing or unexpected property;
like the server, the path here then names the property itself
(`/since` + `required: epoch` → `/since/epoch`).

Run: `pytest tests/contract` with TOURCAST_BIN (default target/debug/tourcast)
built and `npm ci` done in tests/contract (for ajv-cli).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import websockets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SCHEMAS = {
    "client": ROOT / "schemas" / "client_message.schema.json",
    "server": ROOT / "schemas" / "server_message.schema.json",
    "event": ROOT / "schemas" / "availability_event.schema.json",
    "booking": ROOT / "schemas" / "booking_event.schema.json",
    "room": ROOT / "schemas" / "room_event.schema.json",
}
FIXTURES = json.loads((HERE / "fixtures.json").read_text())
AJV = HERE / "node_modules" / ".bin" / "ajv"
COMBINATORS = {"if", "then", "else", "allOf", "anyOf", "oneOf", "not", "$ref"}


def cases(kind: str):
    for validity in ("valid", "invalid"):
        for index, fixture in enumerate(FIXTURES[kind][validity]):
            yield kind, validity, index, fixture


ALL = [c for kind in SCHEMAS for c in cases(kind)]


def pointer(parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


# --- ajv-cli, no flags --------------------------------------------------------


def ajv_cli(kind: str) -> dict[str, dict]:
    """Runs ajv-cli once over every fixture of `kind`; verdict and errors by file name."""
    assert AJV.exists(), f"{AJV} is missing: run `npm ci` in tests/contract"
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for _, validity, index, fixture in cases(kind):
            path = Path(tmp) / f"{kind}-{validity}-{index}.json"
            path.write_text(json.dumps(fixture["message"]))
            files.append(path)
        args = [str(AJV), "validate", "-s", str(SCHEMAS[kind])]
        for path in files:
            args += ["-d", str(path)]
        run = subprocess.run(args, capture_output=True, text=True, timeout=60)
    results: dict[str, dict] = {}
    for line in run.stdout.splitlines():
        if m := re.match(r"^(\S+) valid$", line):
            results[Path(m[1]).stem] = {"valid": True, "errors": []}
    # Refusals go to stderr: "<file> invalid" then the errors as ajv prints them.
    blocks = re.split(r"^(\S+) invalid$", run.stderr, flags=re.M)
    for name, body in zip(blocks[1::2], blocks[2::2]):
        errors = []
        for chunk in re.split(r"^  \{$", body, flags=re.M)[1:]:
            field = lambda key: (m := re.search(rf"\b{key}: (['\"])(.*?)\1", chunk)) and m[2]  # noqa: E731
            errors.append(
                {
                    "instancePath": field("instancePath") or "",
                    "keyword": field("keyword"),
                    "missingProperty": field("missingProperty"),
                    "additionalProperty": field("additionalProperty"),
                }
            )
        results[Path(name).stem] = {"valid": False, "errors": errors}
    assert len(results) == len(files), f"ajv-cli said nothing about some files:\n{run.stdout}\n{run.stderr}"
    assert run.returncode == (1 if FIXTURES[kind]["invalid"] else 0), run.stderr
    return results


def ajv_path(errors: list[dict]) -> str | None:
    for error in errors:
        if error["keyword"] in COMBINATORS:
            continue
        path = error["instancePath"]
        if error["keyword"] == "required":
            path += "/" + error["missingProperty"]
        elif error["keyword"] == "additionalProperties":
            path += "/" + error["additionalProperty"]
        return path
    # Only combinators (a `not`, e.g. a oneof rule's "both set"): ajv points
    # at the object they apply to.
    return errors[0]["instancePath"] if errors else None


# --- python-jsonschema --------------------------------------------------------


def python_verdict(kind: str, message) -> tuple[bool, str | None]:
    schema = json.loads(SCHEMAS[kind].read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(message))
    if error is None:
        return True, None
    # An `anyOf` whose branches all failed (a oneof rule's "none set"): the
    # best of its branches' errors names the field, as ajv's does.
    while error.validator in ("anyOf", "oneOf") and error.context:
        error = jsonschema.exceptions.best_match(error.context)
    path = pointer(error.absolute_path)
    if error.validator == "required":
        missing = [p for p in error.validator_value if p not in error.instance]
        path += pointer(missing[:1])
    elif error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        path += pointer(sorted(k for k in error.instance if k not in known)[:1])
    return False, path


# --- the gateway ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gateway():
    binary = os.environ.get("TOURCAST_BIN", str(ROOT / "target" / "debug" / "tourcast"))
    port = free_port()
    # No demo event during the run (1 h), no rate limit in the way.
    args = [binary, "--demo", "--demo-interval", "1h", "--bind", "127.0.0.1", "--port", str(port)]
    args += ["--rate-limit", "1000", "--rate-burst", "1000", "--shutdown-grace", "1s"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gateway did not start: {process.stderr.read().decode()}")
            time.sleep(0.05)
    yield f"ws://127.0.0.1:{port}/ws"
    process.terminate()
    process.wait(timeout=10)


async def gateway_reply(url: str, message) -> dict:
    """The gateway's first reply to `message`, sent as one JSON text frame."""
    async with websockets.connect(url) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection"
        await ws.send(json.dumps(message))
        return json.loads(await asyncio.wait_for(ws.recv(), 5))


# --- the table ------------------------------------------------------------------

VERDICTS: list[str] = []


@pytest.fixture(scope="module")
def ajv_results():
    return {kind: ajv_cli(kind) for kind in SCHEMAS}


@pytest.mark.parametrize("kind,validity,index,fixture", ALL, ids=[f"{c[0]}:{c[3]['name']}" for c in ALL])
def test_validators_agree(kind, validity, index, fixture, ajv_results, gateway):
    expected_valid = validity == "valid"
    ajv = ajv_results[kind][f"{kind}-{validity}-{index}"]
    py_valid, py_path = python_verdict(kind, fixture["message"])
    row = [kind, fixture["name"], validity]
    assert ajv["valid"] == expected_valid, f"ajv-cli: {ajv}"
    assert py_valid == expected_valid, f"python-jsonschema: {py_path}"
    if kind == "client":
        reply = asyncio.run(gateway_reply(gateway, fixture["message"]))
        refused = reply["type"] == "error" and reply["code"] in ("invalid_message", "unknown_type")
        assert refused != expected_valid, f"gateway: {reply}"
        if not expected_valid:
            # The fixture records what the server says; the live gateway says it too,
            # and both generic validators point at that same field.
            assert (reply["code"], reply.get("path")) == (fixture["code"], fixture["path"]), reply
            # A rule over several fields (both of a oneof set) is refused by a
            # generic validator at the object; the server names the field.
            generic = fixture.get("genericPath", fixture["path"])
            assert ajv_path(ajv["errors"]) == generic, f"ajv-cli: {ajv['errors']}"
            assert py_path == generic, "python-jsonschema"
            row += [fixture["path"], "same path"]
    VERDICTS.append(" | ".join(row))


def test_zz_summary():
    """Prints the verdict table (run with -s to see it)."""
    print(f"\n{len(VERDICTS)} fixtures: ajv-cli, python-jsonschema and the gateway agree")
    for row in VERDICTS:
        print("  " + row)
