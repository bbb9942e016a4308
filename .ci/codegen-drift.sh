#!/usr/bin/env bash
# Proves that `cargo run -p tourcast-codegen -- --check` catches drift: in a
# scratch copy of the repository, the untouched copy passes the check, and
# after a comment in a .proto changes (without regenerating) the check fails
# and names the generated files that went stale, the AsyncAPI document
# included when the comment is one it carries.
#
# Usage: bash .ci/codegen-drift.sh   (called by .ci/run after check_codegen)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
# Reuse the main build's compiled dependencies; only the generator builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export CARGO_TERM_COLOR=never

work="$(mktemp -d "${TMPDIR:-/tmp}/tourcast-drift.XXXXXX")"
trap 'rm -rf "$work"' EXIT

fail() {
  echo "codegen-drift: FAIL: $*" >&2
  exit 1
}

# 1. Copy what a checkout would hold: tracked files plus untracked ones that
#    are not ignored (new files not committed yet), skipping deleted ones.
#    `tar -m` gives every file a fresh mtime, so cargo can never mistake the
#    copy's sources for ones it already built.
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' file; do
    [ -f "$file" ] && printf '%s\0' "$file"
  done |
  tar --null -T - -cf - | tar -C "$work" -mxf -

# Installed Node packages are ignored by git but the generators may run tools
# from them (e.g. bindings/node_modules/.bin): share them with the copy.
while IFS= read -r -d '' modules; do
  mkdir -p "$work/$(dirname "$modules")"
  ln -s "$repo/$modules" "$work/$modules"
done < <(find . -path ./target -prune -o -path ./.git -prune -o \
  -maxdepth 3 -type d -name node_modules -print0 -prune)

# 2. Give the copy's packages their own versions. Cargo names build outputs
#    by a hash of the package id (path packages hashed by their path within
#    the workspace); with the same id, the copy's build would overwrite the
#    main tree's artifacts in the shared target dir and, its sources being
#    relative paths with older mtimes, look fresh to the main tree's next
#    build. A distinct version keeps the copy's outputs separate while every
#    dependency is still reused.
for manifest in Cargo.toml tools/codegen/Cargo.toml; do
  sed -i '0,/^version = "\(.*\)"$/s//version = "\1-drift-check"/' "$work/$manifest"
  grep -q -- '-drift-check"$' "$work/$manifest" || fail "could not set the copy's version in $manifest"
done

check() {
  cargo run -q --manifest-path "$work/Cargo.toml" -p tourcast-codegen -- --check --root "$work"
}

# The check fails, naming each of the given files; its output is left in $out.
expect_stale() {
  set +e
  out="$(check 2>&1)"
  local status=$?
  set -e
  printf '%s\n' "$out" | sed 's/^/  | /'
  [ "$status" -ne 0 ] || fail "the check passed although proto/ changed"
  local stale
  for stale in "$@"; do
    printf '%s\n' "$out" | grep -qF "$stale" || fail "the check did not name $stale"
  done
}

# 3. The untouched copy passes: the copy itself is faithful.
if ! out="$(check 2>&1)"; then
  printf '%s\n' "$out" >&2
  fail "the untouched copy fails the check (is the working tree's codegen up to date?)"
fi
echo "codegen-drift: untouched copy passes: $(printf '%s\n' "$out" | tail -n 1)"

# 4. Change one comment: the doc of Subscribe's first field, which becomes a
#    description in the ClientMessage schema and a doc comment in Subscribe.ts.
proto="$work/proto/tourcast/v1/client.proto"
awk '
  /^message Subscribe \{/ { inside = 1 }
  inside && !done && /^[[:space:]]*\/\/ / { sub(/$/, " Edited by the drift check."); done = 1 }
  { print }
' "$proto" >"$proto.new"
mv "$proto.new" "$proto"
grep -q 'Edited by the drift check.' "$proto" || fail "found no field comment in message Subscribe to edit"

# 5. Without regenerating, the check must fail and name the stale files.
expect_stale schemas/client_message.schema.json bindings/types/Subscribe.ts
# A comment is not a shape change: unrelated files must not be reported.
if printf '%s\n' "$out" | grep -qE 'server_message|ServerMessage|Ping\.ts'; then
  fail "the check named files the edit does not affect"
fi

# 6. A message comment is also the AsyncAPI message's description: editing
#    BookingEvent's makes the document stale too, besides its schema and type.
proto="$work/proto/tourcast/v1/event.proto"
awk '
  /^message BookingEvent \{/ && !done { sub(/^/, "// Edited by the drift check.\n"); done = 1 }
  { print }
' "$proto" >"$proto.new"
mv "$proto.new" "$proto"
grep -q 'Edited by the drift check.' "$proto" || fail "found no message BookingEvent to edit"
expect_stale schemas/asyncapi.yaml schemas/booking_event.schema.json bindings/types/BookingEvent.ts
echo "codegen-drift: OK (a proto comment change without regeneration fails the check, naming the stale files, schemas/asyncapi.yaml included)"
