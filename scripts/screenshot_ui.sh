#!/usr/bin/env bash
# Screenshot of the Dagster asset graph served by `make ui` (headless Chromium).
#   scripts/screenshot_ui.sh [out.png]      (default docs/images/dagster_asset_graph.png)
# Starts `make ui` in its own process group, waits for the webserver and the code location,
# takes the screenshot, then kills the whole group (dagster dev may ignore SIGTERM alone).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/images/dagster_asset_graph.png}"
PORT=3000
# the upstream lineage of the published marts: every asset from the landing files to publish
URL="${URL:-http://127.0.0.1:${PORT}/assets/published_marts?view=lineage&lineageScope=upstream&lineageDepth=30}"
mkdir -p "$(dirname "$OUT")"

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (needs root)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
if (exec 3<>/dev/tcp/127.0.0.1/${PORT}) 2>/dev/null; then
  echo "port ${PORT} is already in use: stop the other dagster dev first" >&2
  exit 1
fi

# an instance of its own with the project's dagster.yaml (pool limit; no newsletter pop-up)
if [ -z "${DAGSTER_HOME:-}" ]; then
  DAGSTER_HOME="$(mktemp -d -t dagster-home-XXXX)"
  cp orchestration/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
  export DAGSTER_HOME
fi
LOG="$(mktemp -t dagster-ui-XXXX.log)"
setsid make ui >"$LOG" 2>&1 &
PGID=$!
cleanup() { kill -TERM -- "-${PGID}" 2>/dev/null || true; sleep 2; kill -KILL -- "-${PGID}" 2>/dev/null || true; }
trap cleanup EXIT

# wait for the webserver, then for the code location to load (its asset graph is non-empty)
for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:${PORT}/server_info" >/dev/null 2>&1; then break; fi
  sleep 1
done
QUERY='{"query":"{ assetNodes { assetKey { path } } }"}'
for _ in $(seq 1 120); do
  if curl -fsS -H 'Content-Type: application/json' -d "$QUERY" "http://127.0.0.1:${PORT}/graphql" \
      2>/dev/null | grep -q 'dim_user_profiles'; then
    break
  fi
  sleep 1
done

PROFILE="$(mktemp -d)"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$PROFILE" --screenshot="$OUT" --window-size=1600,1000 \
  --virtual-time-budget=15000 "$URL" >/dev/null 2>&1 || true
rm -rf "$PROFILE"
if [ -s "$OUT" ]; then
  echo "saved $OUT"
else
  echo "no screenshot; dagster dev log: $LOG" >&2
  exit 1
fi
