"""readme.py on small examples: what it understands, what it refuses, and
how a reply's shape is compared. Fast; no processes."""

import pytest

import readme
from readme import ReadmeError, mismatches, parse_shape


def commands(markdown):
    (block,) = readme.parse_blocks(markdown)
    return readme.shell_commands(block)[0]


def test_blocks_keep_their_language_section_and_indented_fences():
    text = "# A\n```bash\ncargo run --release -- --demo\n```\n## B\n- item:\n\n  ```sh\n  tourcast --help\n  ```\n"
    first, second = readme.parse_blocks(text)
    assert (first.lang, first.section, first.lines) == ("bash", "A", [(3, "cargo run --release -- --demo")])
    assert (second.lang, second.section, second.lines) == ("sh", "B", [(9, "tourcast --help")])
    with pytest.raises(ReadmeError):
        readme.parse_blocks("```bash\ncargo build\n")


def test_commands_are_classified_and_comments_and_continuations_handled():
    found = commands(
        "```bash\n"
        "export JWT_SECRET=change-me\n"
        "cargo run --release -- --demo &   # in the background\n"
        "TOKEN=$(cargo run -q --release -- token --sub alice --ttl 1h)\n"
        "npx wscat -c ws://localhost:8080/ws -H \"Authorization: Bearer $TOKEN\"\n"
        "echo '{\"tourId\":\"t # 1\"}' \\\n"
        "  | ./target/release/tourcast publish --kind low\n"
        "cargo run --bin codegen -- --check\n"
        "cargo test -p tourcast-codegen\n"
        "```\n"
    )
    assert [c.kind for c in found] == ["export", "gateway", "token", "wscat", "publish", "tool", "tool"]
    assert found[1].background and found[1].tourcast == ["--demo"]
    assert found[2].capture == "TOKEN"
    assert found[3].headers == [("Authorization", "Bearer $TOKEN")]
    assert found[4].stdin == '{"tourId":"t # 1"}\n' and found[4].line == 6


@pytest.mark.parametrize(
    "line",
    [
        "curl http://localhost:8080/health",
        "cargo run --release --features x -- --demo",
        "tourcast serve-forever",
        "npx wscat --no-color -c ws://localhost:8080",
        "cat events | grep x | tourcast publish",
        "grep x file | tourcast publish",
        "cargo test --workspace",
    ],
)
def test_a_command_it_does_not_know_is_an_error_not_a_skip(line):
    with pytest.raises(ReadmeError):
        commands(f"```bash\n{line}\n```\n")


def test_terminal_lines_must_be_commands_requests_or_replies():
    (block,) = readme.parse_blocks('```text\n$ npx wscat -c ws://localhost:8080/ws\n> {"type":"ping"}\n< {"type":"pong"}\n```\n')
    assert [s.kind for s in readme.terminal_steps(block)] == ["command", "send", "expect"]
    for bad in ['  {"type":"pong"}', '> {"type":', "$ ls"]:
        (block,) = readme.parse_blocks(f"```text\n$ npx wscat -c ws://localhost:8080/ws\n{bad}\n```\n")
        with pytest.raises(ReadmeError):
            readme.terminal_steps(block)


def test_inline_code_spans_may_wrap_and_skip_blocks():
    text = "Run `tourcast\ntoken --sub a` now.\n```bash\n`not inline`\n```\nand `x`.\n"
    assert readme.inline_code(text) == [(1, "tourcast token --sub a"), (6, "x")]


def test_ellipses_are_wildcards_for_values_elements_and_further_keys():
    shape = parse_shape(1, '{"type":"stats","a":…,"list":[…],"o":{"k":"v",…},"id":"0f8c…"}')
    actual = {"type": "stats", "a": [1], "list": [{"x": 1}], "o": {"k": "v", "more": 2}, "id": "zz"}
    assert mismatches(shape, actual) == []
    assert mismatches(shape, {**actual, "extra": 1}) == ["/: unexpected 'extra' (the README does not show it)"]
    assert mismatches(shape, {**actual, "o": {"more": 2}}) == ["/o: missing 'k'"]
    with pytest.raises(ReadmeError):
        parse_shape(7, '{"type":')


def test_literals_are_compared_and_figures_timestamps_and_ids_are_not():
    shape = parse_shape(
        1,
        '{"type":"error","code":"invalid_message","path":"/tourId","seq":7,"ok":true,'
        '"timestamp":"2026-11-23T10:30:00.000Z","instanceId":"gw-a:4121"}',
    )
    good = {"type": "error", "code": "invalid_message", "path": "/tourId", "seq": 912, "ok": True,
            "timestamp": "2027-01-02T03:04:05.678Z", "instanceId": "host:77"}
    assert mismatches(shape, good) == []
    assert mismatches(shape, {**good, "code": "unknown_type"}) == [
        "/code: 'unknown_type', the README shows 'invalid_message'"
    ]
    assert mismatches(shape, {**good, "seq": "7"}) == ["/seq: expected a number, got '7'"]
    assert mismatches(shape, {**good, "timestamp": "yesterday"}) == ["/timestamp: 'yesterday' is not a timestamp"]
    assert mismatches(shape, {**good, "ok": False}) == ["/ok: False, the README shows True"]


def test_array_elements_must_each_look_like_one_shown():
    shape = parse_shape(1, '{"tours":[{"tourId":"tour_paris","seats":1}]}')
    assert mismatches(shape, {"tours": [{"tourId": "tour_paris", "seats": 3}]}) == []
    assert mismatches(shape, {"tours": []}) == []
    assert mismatches(shape, {"tours": [{"tourId": "tour_rome", "seats": 3}]}) == [
        "/tours/0/tourId: 'tour_rome', the README shows 'tour_paris'"
    ]
