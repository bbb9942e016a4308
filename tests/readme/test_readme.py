"""README.md's commands, run as written, from a fresh clone.

The clone is of the checkout's HEAD (`git clone`, so nothing uncommitted or
ignored can make it pass), with `target/` linked to the checkout's so that
dependencies are not rebuilt, and its package version suffixed so that its
own build of tourcast never overwrites the checkout's artifacts (see
.ci/codegen-drift.sh for why). Every code block and inline command is read
out of the clone's README.md (readme.py) and run in order:

- `cargo run …` / `./target/release/tourcast …` / `tourcast …` (the release
  binary): a gateway is started and must serve `/health` (and `/ready` when
  it consumes RabbitMQ) and the dashboard; `token` must print a JWT for the
  claims asked, signed with the secret given; `publish` must succeed against
  RabbitMQ, with a gateway consuming the exchange so that it is routable;
- `bash .ci/run` in the first block must be the command CI runs;
- `npx wscat -c URL`: a real WebSocket client connects; in a terminal block
  each `>` line is sent and each `<` line must arrive with the shape shown
  (readme.mismatches); `# wscat prints …` in a shell block is checked too;
- `cargo run --bin X`: another workspace binary (the code generator): it
  must succeed and leave the committed tree unchanged;
- the bindings' install block is tests/consumers/run.sh's to run.

What the test changes, it says: ports (8080 → 18600, 8081 → 18601, or
TOURCAST_README_PORT), the address (BIND_ADDRESS=127.0.0.1), the demo's
pace (DEMO_INTERVAL=200ms) and the broker names (RABBITMQ_EXCHANGE and
RABBITMQ_STREAM unique to the run, prefix `deploy_readme`), all through the
environment, never by editing a command. A terminal block that mints a
token with `--secret S` talks to a gateway consuming RabbitMQ with
JWT_SECRET=S, which the test starts (the README's prose says so).

    target/ci-venv/bin/python -m pytest tests/readme -q   # RabbitMQ on 127.0.0.1:5672
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from websockets.sync.client import connect

import readme
from readme import BROADCASTS, Block, Command, ReadmeError, mismatches

CHECKOUT = Path(__file__).resolve().parents[2]
PORT_BASE = int(os.environ.get("TOURCAST_README_PORT", "18600"))
README_PORTS = {8080: PORT_BASE, 8081: PORT_BASE + 1}
CONSUMER_PORT = PORT_BASE + 90
AMQP_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
REPLY_TIMEOUT = 30  # seconds for one `<` reply
BUILD_TIMEOUT = 1800  # a first `cargo run --release` compiles tourcast


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [readme] {text}", flush=True)


def map_port(port: int, where: str) -> int:
    if port not in README_PORTS:
        raise ReadmeError(f"{where}: port {port} is not one the test maps ({sorted(README_PORTS)})")
    return README_PORTS[port]


def map_url(url: str, where: str) -> str:
    def replace(match: re.Match) -> str:
        return f"127.0.0.1:{map_port(int(match.group(2)), where)}"

    mapped = re.sub(r"(localhost|127\.0\.0\.1):(\d+)", replace, url)
    if mapped == url:
        raise ReadmeError(f"{where}: {url} names no local port")
    return mapped


def expand(text: str, variables: dict[str, str], where: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ReadmeError(f"{where}: ${name} is used before the README sets it")
        return variables[name]

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)\}|\$([A-Z_][A-Z0-9_]*)", replace, text)


def jwt_claims(token: str, secret: str | None, where: str) -> dict:
    parts = token.split(".")
    assert len(parts) == 3, f"{where}: not a JWT: {token!r}"

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    if secret is not None:
        signature = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        assert hmac.compare_digest(signature, decode(parts[2])), f"{where}: not signed with {secret!r}"
    return json.loads(decode(parts[1]))


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args and args.index(name) + 1 < len(args) else None


class Gateway:
    """A gateway process started by a README command (or the test's consumer)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict, port: int, log: Path, demo: bool):
        self.port, self.log, self.demo, self.argv = port, log, demo, argv
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_serving(self, where: str) -> None:
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"{where}: exited ({self.process.returncode}): {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url("/health"), timeout=2) as response:
                    health = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"{where}: no /health after {BUILD_TIMEOUT}s"
                time.sleep(0.2)
        assert health["status"] == "ok", f"{where}: /health {health}"
        assert health["eventSource"]["kind"] == ("demo" if self.demo else "rabbitmq"), health
        if not self.demo:
            ready_by = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(self.url("/ready"), timeout=2):
                        break
                except urllib.error.HTTPError:
                    assert time.monotonic() < ready_by, f"{where}: /ready never 200"
                    time.sleep(0.2)
        with urllib.request.urlopen(self.url("/"), timeout=5) as response:
            assert b'<div id="root">' in response.read(), f"{where}: no dashboard at /"

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class ReadmeRun:
    """Runs the clone's README, block by block."""

    def __init__(self, clone: Path, scratch: Path):
        self.clone, self.scratch = clone, scratch
        tag = uuid.uuid4().hex[:12]
        self.exchange = f"deploy_readme-{tag}"
        self.stream = f"deploy_readme-{tag}.stream"
        self.gateways: dict[int, Gateway] = {}
        self.consumer: Gateway | None = None
        self.tokens: list[str] = []
        self.counts: dict[str, int] = {}
        self.ran: set[str] = set()  # normalised command texts that ran
        self.text = (clone / "README.md").read_text()

    # --- environment ---------------------------------------------------
    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        for name in [n for n in env if n.startswith(("JWT_", "RABBITMQ_", "TOURCAST_"))]:
            del env[name]
        env.update(
            CARGO_TERM_COLOR="never",
            PORT=str(README_PORTS[8080]),
            BIND_ADDRESS="127.0.0.1",
            DEMO_INTERVAL="200ms",
            SHUTDOWN_GRACE="1s",
            RABBITMQ_URL=AMQP_URL,
            RABBITMQ_EXCHANGE=self.exchange,
            RABBITMQ_STREAM=self.stream,
            RABBITMQ_RECONNECT_MIN="200ms",
            RUST_LOG="info,lapin=error",
        )
        env.update(extra or {})
        return env

    def binary(self) -> Path:
        return self.clone / "target" / "release" / "tourcast"

    def argv_for(self, command: Command, variables: dict[str, str]) -> list[str]:
        where = f"README.md:{command.line}"
        argv = [expand(arg, variables, where) for arg in command.argv]
        if argv[0] == "tourcast":
            argv[0] = str(self.binary())
        if "--port" in argv:
            at = argv.index("--port") + 1
            argv[at] = str(map_port(int(argv[at]), where))
        return argv

    def count(self, kind: str, command: Command) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.ran.add(" ".join(command.text.split()))

    # --- commands -------------------------------------------------------
    def run_once(self, command: Command, variables: dict[str, str]) -> str:
        where = f"README.md:{command.line}"
        argv = self.argv_for(command, variables)
        if command.kind == "publish":
            self.ensure_consumer()
        started = time.monotonic()
        result = subprocess.run(
            argv, cwd=self.clone, env=self.env(variables), input=command.stdin,
            capture_output=True, text=True, timeout=BUILD_TIMEOUT,
        )
        assert result.returncode == 0, (
            f"{where}: `{command.text}` exited {result.returncode}:\n{result.stdout}\n{result.stderr[-3000:]}"
        )
        output = result.stdout.strip()
        if command.kind == "token":
            args = command.tourcast
            secret = flag(args, "--secret") or variables.get("JWT_SECRET")
            claims = jwt_claims(output, secret if "--private-key" not in args else None, where)
            assert claims.get("sub") == flag(args, "--sub"), f"{where}: {claims}"
            if "--admin" in args:
                assert claims.get("admin") is True, f"{where}: {claims}"
            tours = flag(args, "--tours")
            if tours is not None:
                assert claims.get("tours") in (tours, tours.split(",")), f"{where}: {claims}"
            self.tokens.append(output)
        if command.kind == "publish":
            assert "published" in output, f"{where}: nothing published: {output!r} {result.stderr[-2000:]}"
        say(f"README.md:{command.line} {command.kind}: ok in {time.monotonic() - started:.1f}s")
        self.count(command.kind, command)
        return output

    def start_gateway(self, command: Command, variables: dict[str, str]) -> Gateway:
        where = f"README.md:{command.line}"
        argv = self.argv_for(command, variables)
        port = int(flag(argv, "--port") or README_PORTS[8080])
        if port in self.gateways:
            self.gateways.pop(port).stop()
        demo = "--demo" in command.tourcast
        gateway = Gateway(argv, self.clone, self.env(variables), port, self.scratch / f"gateway-{port}.log", demo)
        self.gateways[port] = gateway
        started = time.monotonic()
        gateway.wait_serving(where)
        say(f"{where} gateway on :{port} ({'demo' if demo else 'RabbitMQ'}) serves in {time.monotonic() - started:.1f}s")
        self.count("gateway", command)
        return gateway

    def implied_gateway(self, secret: str, line: int) -> None:
        """The RabbitMQ gateway with JWT_SECRET=secret that a terminal block's
        token and publish lines talk to."""
        port = README_PORTS[8080]
        if port in self.gateways:
            self.gateways.pop(port).stop()
        gateway = Gateway(
            [str(self.binary())], self.clone, self.env({"JWT_SECRET": secret}), port,
            self.scratch / f"gateway-{port}.log", demo=False,
        )
        self.gateways[port] = gateway
        gateway.wait_serving(f"README.md:{line} (the gateway it implies, JWT_SECRET={secret})")

    def ensure_consumer(self) -> None:
        """A gateway consuming the run's exchange, so that every publish is routable."""
        if self.consumer is None:
            self.consumer = Gateway(
                [str(self.binary()), "--port", str(CONSUMER_PORT)], self.clone, self.env(),
                CONSUMER_PORT, self.scratch / "consumer.log", demo=False,
            )
            self.consumer.wait_serving("the test's consumer gateway")

    def wscat(self, command: Command, variables: dict[str, str]):
        where = f"README.md:{command.line}"
        url = map_url(expand(command.url, variables, where), where)
        headers = [(name, expand(value, variables, where)) for name, value in command.headers]
        # Entered at once (and closed by the block): a session spans steps.
        client = connect(url, additional_headers=headers, open_timeout=10).__enter__()
        self.count("wscat", command)
        return client

    # --- blocks -----------------------------------------------------------
    def shell_block(self, block: Block, first: bool) -> None:
        commands, comments = readme.shell_commands(block)
        if all(c.kind == "delegated" for c in commands):
            return self.delegated(block)
        variables: dict[str, str] = {}
        client = None
        steps = sorted([(c.line, "command", c) for c in commands] + [(n, "comment", t) for n, t in comments],
                       key=lambda step: step[0])
        try:
            for line, kind, item in steps:
                where = f"README.md:{line}"
                if kind == "comment":
                    client = self.comment(line, item, client)
                    continue
                command: Command = item
                if command.kind == "ci":
                    assert first, f"{where}: `bash .ci/run` belongs in the first block"
                    assert (self.clone / ".ci" / "run").is_file(), f"{where}: no .ci/run"
                    self.count("ci", command)
                elif command.kind == "export":
                    name, value = command.env
                    variables[name] = value
                elif command.kind == "delegated":
                    raise ReadmeError(f"{where}: npm/cd commands only in the bindings' install block: {command.text}")
                elif command.kind == "wscat":
                    if client is not None:
                        client.close()
                    client = self.wscat(command, variables)
                    greeting = json.loads(client.recv(timeout=10))
                    assert greeting["type"] == "connection", f"{where}: {greeting}"
                elif command.kind == "gateway":
                    self.start_gateway(command, variables)
                elif command.kind in ("token", "publish", "help", "build"):
                    output = self.run_once(command, variables)
                    if command.capture:
                        variables[command.capture] = output
                elif command.kind == "tool":
                    self.tool(command, variables)
                else:
                    raise ReadmeError(f"{where}: {command.kind} is not runnable here")
                if command.capture and command.kind not in ("token", "publish", "help", "build"):
                    raise ReadmeError(f"{where}: only a one-shot command's output can be captured")
        finally:
            if client is not None:
                client.close()

    def comment(self, line: int, comment: str, client):
        where = f"README.md:{line}"
        if comment.startswith("wscat prints "):
            assert client is not None, f"{where}: `# wscat prints` with no wscat open in the block"
            shape = readme.parse_shape(line, comment[len("wscat prints "):])
            self.expect(client, shape, where)
        elif comment.startswith("open http"):
            url = comment[len("open "):]
            if "<the token>" in url:
                assert self.tokens, f"{where}: <the token> before any token"
                url = url.replace("<the token>", self.tokens[-1])
            url = url.split()[0]
            with urllib.request.urlopen(map_url(url, where), timeout=5) as response:
                assert b'<div id="root">' in response.read(), f"{where}: {url} is not the dashboard"
            self.counts["open"] = self.counts.get("open", 0) + 1
        return client

    def delegated(self, block: Block) -> None:
        """The bindings' install block: tests/consumers/run.sh runs it
        verbatim from bindings/README.md, and checks that README.md shows it."""
        text = "\n".join(line for _, line in block.lines)
        bindings = (self.clone / "bindings" / "README.md").read_text()
        assert text in bindings, (
            f"README.md:{block.line}: an npm block that is not bindings/README.md's install block "
            "(which tests/consumers/run.sh runs): nothing runs it"
        )
        assert "readme_block" in (self.clone / "tests" / "consumers" / "run.sh").read_text()
        self.counts["delegated"] = self.counts.get("delegated", 0) + 1

    def tool(self, command: Command, variables: dict[str, str]) -> None:
        before = self.status()
        self.run_once(command, variables)
        after = self.status()
        assert after == before, f"README.md:{command.line}: `{command.text}` changed the tree: {after}"

    def status(self) -> str:
        return subprocess.run(["git", "status", "--porcelain"], cwd=self.clone,
                              capture_output=True, text=True, check=True).stdout

    def terminal_block(self, block: Block) -> None:
        steps = readme.terminal_steps(block)
        started = time.monotonic()
        secrets = {flag(s.command.tourcast, "--secret") for s in steps
                   if s.kind == "command" and s.command.kind == "token"} - {None}
        if len(secrets) > 1:
            raise ReadmeError(f"README.md:{block.line}: tokens with different secrets in one session")
        if secrets:
            self.implied_gateway(secrets.pop(), block.line)
        variables: dict[str, str] = {}
        client = None
        greeted = False
        try:
            for step in steps:
                where = f"README.md:{step.line}"
                if step.kind == "command":
                    command = step.command
                    if command.kind == "wscat":
                        if client is not None:
                            client.close()
                        client, greeted = self.wscat(command, variables), False
                    elif command.kind in ("token", "publish"):
                        output = self.run_once(command, variables)
                        if command.kind == "token":
                            variables["TOKEN"] = output
                    else:
                        raise ReadmeError(f"{where}: a terminal session runs wscat, token and publish only")
                    continue
                assert client is not None, f"{where}: `{step.kind}` before `npx wscat`"
                if not greeted:
                    greeted = True
                    if step.kind == "expect" and step.shape.get("type") == "connection":
                        self.expect(client, step.shape, where)
                        continue
                    greeting = json.loads(client.recv(timeout=10))
                    assert greeting["type"] == "connection", f"{where}: {greeting}"
                if step.kind == "send":
                    client.send(step.message)
                    self.counts["sent"] = self.counts.get("sent", 0) + 1
                else:
                    self.expect(client, step.shape, where)
            say(f"README.md:{block.line} session: {len(steps)} lines as shown, in {time.monotonic() - started:.1f}s")
        finally:
            if client is not None:
                client.close()

    def expect(self, client, shape, where: str) -> dict:
        """The next message with `shape`; unsolicited broadcasts in between
        are skipped, anything else is a failure."""
        deadline = time.monotonic() + REPLY_TIMEOUT
        last_problems: list[str] = []
        last_message = None
        while True:
            remaining = deadline - time.monotonic()
            try:
                message = json.loads(client.recv(timeout=max(remaining, 0.01)))
            except TimeoutError:
                raise AssertionError(
                    f"{where}: no reply shaped like the README's within {REPLY_TIMEOUT}s; "
                    f"last near miss: {last_problems} in {json.dumps(last_message)}"
                ) from None
            problems = mismatches(shape, message)
            if not problems:
                self.counts["replies"] = self.counts.get("replies", 0) + 1
                return message
            if message.get("type") in BROADCASTS:
                last_problems, last_message = problems, message
                continue
            raise AssertionError(f"{where}: the reply differs from the README's: {problems}\n{message}")

    # --- inline code --------------------------------------------------------
    def inline(self) -> list[str]:
        placeholders = []
        for line, span in readme.inline_code(self.text):
            where = f"README.md:{line}"
            if not re.match(r"(cargo (run|build)|bash \.ci/run|npx wscat|\./target/release/tourcast|tourcast)(\s|$)", span):
                continue
            argv = span.split()
            if argv[0] == "tourcast" and (len(argv) == 1 or (len(argv) == 2 and not argv[1].startswith("-"))):
                continue  # a name (`tourcast publish`), not an example
            if "…" in span:
                placeholders.append(f"{where}: {span}")
                continue
            if argv[0] != "tourcast":
                assert span in self.ran, (
                    f"{where}: `{span}` appears in prose but in no code block the test ran: "
                    "show it in a block, or teach tests/readme the new form"
                )
                continue
            command = readme.parse_command(line, span)
            if command.kind == "gateway":
                self.start_gateway(command, {})
            else:
                self.run_once(command, {})
        return placeholders

    # --- the whole README ---------------------------------------------------
    def run(self) -> None:
        blocks = readme.parse_blocks(self.text)
        assert blocks, "README.md has no code blocks"
        first = blocks[0]
        commands, _ = readme.shell_commands(first)
        texts = [c.text for c in commands]
        assert texts == ["cargo run --release -- --demo", "bash .ci/run"], (
            f"README.md:{first.line}: the first block should be the demo and the test command: {texts}"
        )
        for index, block in enumerate(blocks):
            if block.lang in ("bash", "sh", "shell"):
                self.shell_block(block, first=index == 0)
            elif readme.is_terminal(block):
                self.terminal_block(block)
        placeholders = self.inline()
        for line in placeholders:
            say(f"placeholder, not run: {line}")
        say(f"done: {json.dumps(self.counts, sort_keys=True)}")
        for kind in ("gateway", "token", "publish", "wscat", "sent", "replies", "ci"):
            assert self.counts.get(kind), f"the README ran no {kind}: is the parser still finding its examples?"

    def close(self) -> None:
        for gateway in list(self.gateways.values()) + ([self.consumer] if self.consumer else []):
            gateway.stop()
        try:
            import pika

            connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            channel = connection.channel()
            for queue in (self.stream, f"{self.stream}.checkpoints"):
                channel.queue_delete(queue)
            channel.exchange_delete(self.exchange)
            connection.close()
        except Exception as error:  # cleanup must not hide the test's own failure
            say(f"cleanup of {self.exchange}: {error}")


@pytest.fixture(scope="module")
def clone():
    scratch = Path(tempfile.mkdtemp(prefix="deploy_readme-"))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True,
                          text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=CHECKOUT,
                           capture_output=True, text=True, check=True).stdout
    if dirty:
        say(f"uncommitted changes are not tested (the clone is of HEAD {head[:12]}):\n{dirty}")
    path = scratch / "tourcast"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(CHECKOUT), str(path)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head], cwd=path, check=True)
    (CHECKOUT / "target").mkdir(exist_ok=True)
    (path / "target").symlink_to(CHECKOUT / "target")
    # Every workspace package gets its own version, so that none of the
    # clone's builds lands on the checkout's artifacts in the shared target/.
    manifests = subprocess.run(["git", "ls-files", "Cargo.toml", "*/Cargo.toml"], cwd=path,
                               capture_output=True, text=True, check=True).stdout.split()
    suffixed_any = False
    for name in manifests:
        manifest = path / name
        text = manifest.read_text()
        suffixed = re.sub(r'(?ms)^(\[package\][^\[]*?^version = "[^"]*)"', r'\1-readme-check"', text, count=1)
        suffixed_any |= suffixed != text
        manifest.write_text(suffixed)
    assert suffixed_any, "no package version in any Cargo.toml"
    for modules in ("bindings/node_modules", "dashboard/node_modules"):
        if (CHECKOUT / modules).is_dir():
            (path / modules).symlink_to(CHECKOUT / modules)
    yield path, scratch
    shutil.rmtree(scratch, ignore_errors=True)


def test_every_example_in_the_readme_runs_as_written(clone):
    path, scratch = clone
    run = ReadmeRun(path, scratch)
    try:
        run.run()
    except ReadmeError as error:
        pytest.fail(f"README.md: {error}")
    finally:
        run.close()
