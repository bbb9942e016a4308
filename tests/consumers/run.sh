#!/usr/bin/env bash
# Installs @tourcast/bindings the way bindings/README.md says, into throwaway
# copies of the apps in this folder, and uses it as each of them would:
#
#   bundler-app   Vite, moduleResolution bundler, protobuf frames: the whole
#                 README install block, run verbatim as `my-frontend`; built,
#                 then opened in headless Chromium against the gateway; then
#                 without @bufbuild/protobuf, whose absence must fail the build.
#   react18/19    the README's install line; the hook (../react-app) rendered
#                 with renderToString, hydrated in jsdom, a live update seen;
#                 tsc --strict with skipLibCheck off, against the app's React types.
#   node-service  the README's install line; nodenext + skipLibCheck on, where
#                 wrong usage must still fail to compile; declarations checked
#                 under node16/nodenext/bundler x skipLibCheck on/off; the
#                 shipped JSON Schema imported; the proto entry without its
#                 peer fails naming it.
#
# Each app's own dependencies come from its lockfile (npm ci). One gateway
# (`--demo`, a booking every 200 ms, its own port) serves them all.
# Usage: bash tests/consumers/run.sh   (after `cargo build --bin tourcast`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${TOURCAST_BIN:-$repo/target/debug/tourcast}"
[ -x "$bin" ] || { echo "$bin is missing: cargo build --bin tourcast" >&2; exit 1; }
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

scratch="$(mktemp -d)"
gateway_pid=""
cleanup() {
  if [ -n "$gateway_pid" ]; then kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
  rm -rf "$scratch"
}
trap cleanup EXIT
t0=$SECONDS
phase() { printf -- '--- [%3ss] %s\n' "$((SECONDS - t0))" "$*"; }

# The README's install block: the first ```sh block under "## Install".
readme_block="$(awk '
  /^## Install/ { section = 1; next }
  section && /^## / { exit }
  section && /^```sh$/ { inside = 1; next }
  section && inside && /^```$/ { exit }
  section && inside { print }
' "$repo/bindings/README.md")"
[ -n "$readme_block" ] || { echo "no install block in bindings/README.md" >&2; exit 1; }
# The top-level README shows the same block: it must not drift from it.
python3 -c 'import sys; sys.exit(sys.argv[1] not in open(sys.argv[2]).read())' "$readme_block" "$repo/README.md" ||
  { echo "README.md does not show bindings/README.md's install block verbatim" >&2; exit 1; }
install_line="$(printf '%s\n' "$readme_block" | grep -E '^npm install \.\./tourcast/bindings/[^ ]+\.tgz' | sed 's/ *#.*//')"
[ -n "$install_line" ] || { echo "the README's install block has no 'npm install ../tourcast/bindings/….tgz' line" >&2; exit 1; }

# The layout the README assumes: the checkout and the app side by side.
ln -s "$repo" "$scratch/tourcast"
app() { # app <template> <name>: a fresh copy, its own dependencies from its lockfile
  mkdir -p "$scratch/$2"
  (cd "$here/$1" && tar --exclude=node_modules --exclude=out --exclude=dist -cf - .) | (cd "$scratch/$2" && tar -xf -)
  (cd "$scratch/$2" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

phase "gateway"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$bin" --demo --demo-interval 200ms --bind 127.0.0.1 --port "$port" --shutdown-grace 1s >"$scratch/gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$scratch/gateway.log" >&2; exit 1; }
  sleep 0.1
done
export TOURCAST_URL="ws://127.0.0.1:$port/ws"

phase "bundler app: the README's install block, verbatim, as my-frontend"
app bundler-app my-frontend
printf '%s\n' "$readme_block" | sed 's/^/  | /'
# (npm pack lists every file it packs: the list is left out of the log.)
(cd "$scratch" && bash -euo pipefail -c "$readme_block") 2>&1 | { grep -vE '^npm notice [0-9.]+k?B ' || true; }
tarball="$(ls "$repo"/bindings/tourcast-bindings-*.tgz)"
tar -tzf "$tarball" >"$scratch/tarball.txt"
printf '  tarball: %s, %s bytes, %s files\n' "$(basename "$tarball")" "$(stat -c %s "$tarball")" "$(wc -l <"$scratch/tarball.txt")"
for file in dist/client/index.js dist/client/index.d.ts dist/react/index.js dist/client/proto.js dist/schemas/client_message.schema.json; do
  grep -qx "package/$file" "$scratch/tarball.txt" || { echo "the tarball has no prebuilt $file" >&2; exit 1; }
done

single_copies() { # the package brings no dependency of its own: peers are the app's
  local dir="$scratch/$1/node_modules/@tourcast/bindings"
  [ -f "$dir/package.json" ] && [ ! -L "$dir" ] || { echo "$1: @tourcast/bindings is not an installed copy" >&2; exit 1; }
  [ ! -e "$dir/node_modules" ] || { echo "$1: @tourcast/bindings has its own node_modules" >&2; ls "$dir/node_modules" >&2; exit 1; }
}

(
  cd "$scratch/my-frontend"
  single_copies my-frontend
  npx tsc -p . --noEmit
  npx tsc -p . --noEmit --skipLibCheck false
  npm run build --silent
  npm run e2e --silent
  # Without the optional peer, the build that imports the proto entry fails, naming it.
  npm uninstall --silent @bufbuild/protobuf
  if npx vite build --outDir dist-without-peer >vite.log 2>&1; then
    echo "vite built @tourcast/bindings/proto without @bufbuild/protobuf installed" >&2
    exit 1
  fi
  grep -q '@bufbuild/protobuf' vite.log || { cat vite.log >&2; exit 1; }
  echo "  without the peer, vite refuses to build: $(grep -m1 '@bufbuild/protobuf' vite.log | cut -c1-160)"
)

for major in 18 19; do
  phase "React $major app"
  app "react$major" "react$major"
  mkdir -p "$scratch/react$major/src" && cp "$here"/react-app/*.tsx "$scratch/react$major/src/"
  (
    cd "$scratch/react$major"
    bash -euo pipefail -c "$install_line"
    single_copies "react$major"
    npm run build --silent
    EXPECT_REACT_MAJOR="$major" npm test --silent
  )
done

phase "Node service (nodenext, skipLibCheck)"
app node-service node-service
(
  cd "$scratch/node-service"
  bash -euo pipefail -c "$install_line"
  single_copies node-service
  npm run build --silent
  # The declarations under every moduleResolution, skipLibCheck on and off.
  for resolution in node16 nodenext bundler; do
    module="$resolution"
    [ "$resolution" = bundler ] && module=esnext
    for skip in true false; do
      npx tsc --noEmit --strict --target es2022 --types node --module "$module" --moduleResolution "$resolution" \
        --skipLibCheck "$skip" src/types.ts
    done
    echo "  declarations resolve under $resolution (skipLibCheck on and off)"
  done
  # Wrong usage must not compile: each marked line gets its error.
  if npx tsc --noEmit --strict --module nodenext --moduleResolution nodenext --skipLibCheck true --types node \
    src/wrong.ts >wrong.log 2>&1; then
    echo "src/wrong.ts compiled: the types are not checked" >&2
    exit 1
  fi
  for n in 1 2 3; do
    line="$(grep -n "WRONG-$n" src/wrong.ts | cut -d: -f1)"
    grep -q "^src/wrong.ts($line," wrong.log || { echo "no error on line $line (WRONG-$n):" >&2; cat wrong.log >&2; exit 1; }
  done
  echo "  src/wrong.ts fails to compile, as it must: $(grep -c 'error TS' wrong.log) errors ($(grep -o 'error TS[0-9]*' wrong.log | sort -u | tr '\n' ' '))"
  npm start --silent
)
phase "consumers passed"
