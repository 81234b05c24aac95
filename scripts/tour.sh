#!/usr/bin/env bash
# The README's 60-second tour, runnable: background engine, catalog, ingest, searches, stop/start round trip.
# Usage: scripts/tour.sh [N_PRODUCTS]   (uses .venv/bin/fuserec; `make tour` installs it first)
set -euo pipefail
cd "$(dirname "$0")/.."
FUSEREC=${FUSEREC:-.venv/bin/fuserec}
N=${1:-2000}
work=$(mktemp -d)
export FUSEREC_STATE_DIR="$work/state"
trap '$FUSEREC engine stop --no-save >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

$FUSEREC engine start
$FUSEREC generate catalog --n "$N" --seed 7 -o "$work/catalog.jsonl"
$FUSEREC ingest products "$work/catalog.jsonl"
$FUSEREC search "running shoes" --filter price=..100 --size 5
$FUSEREC search 'headphones AND (wireless OR bluetooth) -earbuds' --size 5 --no-facets
$FUSEREC search "" --filter category=electronics --filter 'rating>=4' --filter in_stock=true --sort price_asc --size 5
$FUSEREC index status
$FUSEREC engine stop
$FUSEREC engine start
echo "after restart:"
$FUSEREC search "coffee maker" --size 3 --no-facets
$FUSEREC engine status
