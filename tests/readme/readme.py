"""The README's examples, read out of README.md: its fenced code blocks and
inline code, the commands in them, and the WebSocket sessions with the
replies they show. test_readme.py runs what this finds.

Strict on purpose: a line in a shell block, a `$ ` line in a terminal block,
or an inline command that this grammar does not know is a ReadmeError, not
something to skip, so a README example that stops making sense fails CI.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


class ReadmeError(Exception):
    """A README example that the test cannot understand."""


# --- blocks and inline code ----------------------------------------------

FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass
class Block:
    """A fenced code block."""

    line: int  # of the opening fence, 1-based
    lang: str
    lines: list[tuple[int, str]]  # (line number, text without the fence's indent)
    section: str  # the heading it is under


def parse_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    section = ""
    current: Block | None = None
    indent = 0
    for number, line in enumerate(text.splitlines(), 1):
        if current is None:
            if line.startswith("#"):
                section = line.lstrip("#").strip()
            fence = FENCE.match(line)
            if fence:
                indent = len(fence.group(1))
                current = Block(number, fence.group(2), [], section)
        elif line.strip() == "```":
            blocks.append(current)
            current = None
        else:
            current.lines.append((number, line[indent:] if line[:indent].isspace() else line))
    if current is not None:
        raise ReadmeError(f"line {current.line}: a code block is never closed")
    return blocks


def inline_code(text: str) -> list[tuple[int, str]]:
    """Inline code spans outside fenced blocks, whitespace-normalised (a
    span may wrap), with the line each starts on."""
    kept = []
    inside = False
    for line in text.splitlines():
        if FENCE.match(line) or (inside and line.strip() == "```"):
            inside = not inside
            kept.append("")
        else:
            kept.append("" if inside else line)
    prose = "\n".join(kept)
    spans = []
    for match in re.finditer(r"`([^`]+)`", prose):
        number = prose.count("\n", 0, match.start()) + 1
        spans.append((number, " ".join(match.group(1).split())))
    return spans


# --- commands -------------------------------------------------------------

TOURCAST_BINARIES = ("tourcast", "./target/release/tourcast")
ONE_SHOT = {"token", "publish", "--help", "-h", "--version", "-V"}


@dataclass
class Command:
    """One logical line of a shell example."""

    line: int
    text: str  # as written, comment removed
    kind: str  # see classify()
    argv: list[str] = field(default_factory=list)
    background: bool = False  # ends with &
    capture: str | None = None  # NAME=$(…): stdout goes to NAME
    stdin: str | None = None  # echo '…' | …: what the command reads
    url: str | None = None  # wscat
    headers: list[tuple[str, str]] = field(default_factory=list)  # wscat -H
    tourcast: list[str] | None = None  # the gateway's own arguments
    env: tuple[str, str] | None = None  # export NAME=value


def strip_comment(line: str) -> tuple[str, str | None]:
    """Splits `cmd  # comment` where `#` starts a word outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), None


def split_unquoted(text: str, separator: str) -> list[str]:
    parts, quote, start = [], None, 0
    for i, char in enumerate(text):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == separator:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Joins `\\` continuations; keeps the first line's number."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, text in lines:
        if pending:
            number, text = pending[0], pending[1] + " " + text.strip()
            pending = None
        if text.rstrip().endswith("\\"):
            pending = (number, text.rstrip()[:-1].rstrip())
        else:
            joined.append((number, text))
    if pending:
        raise ReadmeError(f"line {pending[0]}: a continuation line ends the block")
    return joined


def parse_command(number: int, text: str) -> Command:
    """A shell line (comment already removed) as a Command, or ReadmeError."""
    text = text.strip()
    capture = re.fullmatch(r"([A-Z_][A-Z0-9_]*)=\$\((.*)\)", text)
    if capture:
        inner = parse_command(number, capture.group(2))
        inner.capture, inner.text = capture.group(1), text
        return inner
    export = re.fullmatch(r"export ([A-Z_][A-Z0-9_]*)=(\S+)", text)
    if export:
        return Command(number, text, "export", env=(export.group(1), export.group(2)))
    background = False
    if text.endswith("&") and not text.endswith("&&"):
        background, text = True, text[:-1].rstrip()
    stages = [stage.strip() for stage in split_unquoted(text, "|")]
    stdin = None
    if len(stages) == 2:
        echo = shlex.split(stages[0])
        if len(echo) != 2 or echo[0] != "echo":
            raise ReadmeError(f"line {number}: only `echo '…' | command` pipes are understood: {text}")
        stdin, text = echo[1] + "\n", stages[1]
    elif len(stages) > 2:
        raise ReadmeError(f"line {number}: a pipeline of {len(stages)} commands: {text}")
    try:
        argv = shlex.split(text)
    except ValueError as error:
        raise ReadmeError(f"line {number}: {error}: {text}") from None
    command = classify(number, text, argv)
    command.background, command.stdin = background, stdin
    if stdin is not None and command.kind not in ("publish",):
        raise ReadmeError(f"line {number}: only `tourcast publish` reads stdin here: {text}")
    return command


def classify(number: int, text: str, argv: list[str]) -> Command:
    """What a command is:
    - `tourcast`-run: `cargo run [--release] [-q] [--bin tourcast] -- ARGS`,
      `./target/release/tourcast ARGS` or `tourcast ARGS` (the release
      binary); kind `token`, `publish`, `help` or `gateway` by ARGS;
    - `tool`: `cargo run --bin X`/`-p X` for another binary of the workspace,
      or `cargo test -p X` for a workspace package's own tests;
    - `build`: `cargo build [--release]`;
    - `ci`: `bash .ci/run`;
    - `wscat`: `npx wscat -c URL [-H 'Name: value']`;
    - `delegated`: `npm …`, `cd …`, `(cd … && …)`: the bindings' install
      block, which tests/consumers/run.sh runs verbatim.
    """
    if not argv:
        raise ReadmeError(f"line {number}: an empty command")
    if argv[0] == "cargo" and argv[1:2] == ["run"]:
        options, args = argv[2:], []
        if "--" in options:
            at = options.index("--")
            options, args = options[:at], options[at + 1 :]
        binary = "tourcast"
        i = 0
        while i < len(options):
            option = options[i]
            if option in ("--release", "-q", "--quiet"):
                i += 1
            elif option in ("--bin", "-p", "--package") and i + 1 < len(options):
                binary = options[i + 1]
                i += 2
            else:
                raise ReadmeError(f"line {number}: cargo run option {option!r} is not understood: {text}")
        if binary != "tourcast":
            return Command(number, text, "tool", argv=argv)
        return tourcast_command(number, text, argv, args)
    if argv[0] == "cargo" and argv[1:2] == ["test"]:
        # Only a workspace package's own tests (`cargo test -p X`): run as a
        # tool, which must leave the tree as it found it.
        if len(argv) == 4 and argv[2] in ("-p", "--package"):
            return Command(number, text, "tool", argv=argv)
        raise ReadmeError(f"line {number}: cargo test options not understood: {text}")
    if argv[0] == "cargo" and argv[1:2] == ["build"]:
        if any(option not in ("--release", "-q") for option in argv[2:]):
            raise ReadmeError(f"line {number}: cargo build options not understood: {text}")
        return Command(number, text, "build", argv=argv)
    if argv[0] in TOURCAST_BINARIES:
        return tourcast_command(number, text, argv, argv[1:])
    if argv == ["bash", ".ci/run"]:
        return Command(number, text, "ci", argv=argv)
    if argv[:2] == ["npx", "wscat"]:
        url, headers, rest = None, [], argv[2:]
        while rest:
            if rest[0] in ("-c", "--connect") and len(rest) > 1:
                url, rest = rest[1], rest[2:]
            elif rest[0] in ("-H", "--header") and len(rest) > 1 and ":" in rest[1]:
                name, value = rest[1].split(":", 1)
                headers.append((name.strip(), value.strip()))
                rest = rest[2:]
            else:
                raise ReadmeError(f"line {number}: wscat option {rest[0]!r} is not understood: {text}")
        if not url:
            raise ReadmeError(f"line {number}: wscat without -c URL: {text}")
        return Command(number, text, "wscat", argv=argv, url=url, headers=headers)
    if argv[0] in ("npm", "cd") or text.startswith("(cd "):
        return Command(number, text, "delegated", argv=argv)
    raise ReadmeError(f"line {number}: a command the README test does not know: {text}")


def tourcast_command(number: int, text: str, argv: list[str], args: list[str]) -> Command:
    first = args[0] if args else ""
    if first in ("token", "publish"):
        kind = first
    elif first in ("--help", "-h", "--version", "-V"):
        kind = "help"
    elif first == "" or first.startswith("-") or first == "serve":
        kind = "gateway"
    else:
        raise ReadmeError(f"line {number}: `tourcast {first}` is not a subcommand the test knows: {text}")
    return Command(number, text, kind, argv=argv, tourcast=args)


def shell_commands(block: Block) -> tuple[list[Command], list[tuple[int, str]]]:
    """A bash/sh block's commands, and its whole-line comments (some of which
    are assertions: `# wscat prints …`, `# open URL`)."""
    commands, comments = [], []
    for number, line in logical_lines(block.lines):
        code, comment = strip_comment(line)
        if not code.strip():
            if comment is not None:
                comments.append((number, comment))
            continue
        commands.append(parse_command(number, code))
    return commands, comments


# --- terminal sessions ------------------------------------------------------


@dataclass
class Step:
    """One line of a terminal block: `$ command`, `> sent` or `< received`."""

    line: int
    kind: str  # "command", "send", "expect"
    command: Command | None = None
    message: str | None = None  # the JSON text after > or <
    shape: object = None  # the parsed expectation, for "expect"


def terminal_steps(block: Block) -> list[Step]:
    steps = []
    for number, line in block.lines:
        if line.startswith("$ "):
            code, _ = strip_comment(line[2:])
            steps.append(Step(number, "command", command=parse_command(number, code)))
        elif line.startswith("> "):
            message = line[2:].strip()
            try:
                json.loads(message)
            except ValueError as error:
                raise ReadmeError(f"line {number}: a request that is not JSON ({error}): {message}") from None
            steps.append(Step(number, "send", message=message))
        elif line.startswith("< "):
            message = line[2:].strip()
            steps.append(Step(number, "expect", message=message, shape=parse_shape(number, message)))
        elif line.strip():
            raise ReadmeError(f"line {number}: a terminal line that is not `$ `, `> ` or `< `: {line}")
    return steps


def is_terminal(block: Block) -> bool:
    return block.lang in ("text", "console", "") and any(
        line.startswith("$ ") for _, line in block.lines
    )


# --- reply shapes -------------------------------------------------------------

ANY = "\u0000any"  # `…` as a value or an element: anything
MORE = "\u0000more"  # `…` among an object's keys: more keys may follow
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# Values the server or the deployment makes up, which an example can only
# illustrate: compared as strings, not by value.
GENERATED = {"clientId", "epoch", "instanceId", "notificationId", "bookingId"}
# Unsolicited messages that may arrive between the replies a session shows.
BROADCASTS = {"tour.availability.updated", "tour.availability.low", "stats", "notification"}


def parse_shape(number: int, text: str) -> object:
    """A reply as the README shows it, `…` turned into markers: as a value or
    an array element it matches anything, among an object's keys it allows
    more keys; inside a string it makes the string a wildcard."""
    out, stack, quote, escaped, last = [], [], False, False, ""
    for char in text:
        if quote:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quote = False
                last = '"'
            continue
        if char == '"':
            quote = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]":
            if stack:
                stack.pop()
        if char == "…":
            if stack and stack[-1] == "{" and last in ("{", ","):
                out.append(json.dumps(MORE) + ":0")
            else:
                out.append(json.dumps(ANY))
            last = "…"
            continue
        out.append(char)
        if not char.isspace():
            last = char
    try:
        return json.loads("".join(out))
    except ValueError as error:
        raise ReadmeError(f"line {number}: a reply that is not JSON even with … as wildcards ({error}): {text}") from None


def mismatches(expected: object, actual: object, path: str = "") -> list[str]:
    """Where `actual` does not have the shape of `expected` (empty: it has).
    Objects: the same keys (more allowed after `…`), each value alike.
    Arrays: every element received is like one of those shown (`[…]`: any).
    Strings: equal, unless they hold `…`, are timestamps (then any
    timestamp), or are GENERATED. Numbers: any number (figures are
    examples). true/false/null: equal."""
    where = path or "/"
    if expected == ANY:
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        problems = []
        keys = set(expected) - {MORE}
        for key in sorted(keys - set(actual)):
            problems.append(f"{where}: missing {key!r}")
        if MORE not in expected:
            for key in sorted(set(actual) - keys):
                problems.append(f"{where}: unexpected {key!r} (the README does not show it)")
        for key in sorted(keys & set(actual)):
            if key in GENERATED and isinstance(expected[key], str):
                if not isinstance(actual[key], str):
                    problems.append(f"{path}/{key}: expected a string, got {actual[key]!r}")
                continue
            problems += mismatches(expected[key], actual[key], f"{path}/{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: expected an array, got {actual!r}"]
        if expected == [ANY]:
            return []
        problems = []
        for i, element in enumerate(actual):
            tries = [mismatches(option, element, f"{path}/{i}") for option in expected]
            if tries and all(tries):
                problems += min(tries, key=len)
        return problems
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return [f"{where}: expected a string, got {actual!r}"]
        if "…" in expected:
            return []
        if TIMESTAMP.match(expected):
            return [] if TIMESTAMP.match(actual) else [f"{where}: {actual!r} is not a timestamp"]
        return [] if actual == expected else [f"{where}: {actual!r}, the README shows {expected!r}"]
    if isinstance(expected, bool) or expected is None:
        return [] if actual == expected else [f"{where}: {actual!r}, the README shows {expected!r}"]
    if isinstance(expected, (int, float)):
        ok = isinstance(actual, (int, float)) and not isinstance(actual, bool)
        return [] if ok else [f"{where}: expected a number, got {actual!r}"]
    return [f"{where}: cannot compare {expected!r}"]
