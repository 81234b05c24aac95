#!/usr/bin/env bash
# Cron-able model refresh: fold new events into profiles, train on the latest window, evaluate, and promote
# the new version only if it beats the active model and engine order. Logs one outcome line per run.
#
#   scripts/refresh_model.sh [--impressions FILE] [--test-fraction 0.2] ...   (extra args go to 'model train')
#
# Environment: the usual FUSEREC_* settings (FUSEREC_OPENSEARCH_URL for a real cluster), plus
#   FUSEREC_BIN      the fuserec command            (default: .venv/bin/fuserec, else fuserec on PATH)
#   REFRESH_LOG      where the outcome line goes    (default: reports/refresh.log)
#   REFRESH_REBUILD  "1" for a full profile rebuild (refits latent vectors; default: incremental update)
# Exit codes: 0 promoted or kept the active model on purpose (refused: worse, or not comparable on the same test
# searches), non-zero on errors (e.g. 2: too little data to train, model.min_searches; the log line says how much).
set -euo pipefail
cd "$(dirname "$0")/.."

FUSEREC=${FUSEREC_BIN:-}
if [ -z "$FUSEREC" ]; then
  if [ -x .venv/bin/fuserec ]; then FUSEREC=.venv/bin/fuserec; else FUSEREC=fuserec; fi
fi
LOG=${REFRESH_LOG:-reports/refresh.log}
mkdir -p "$(dirname "$LOG")"
stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }
log() { echo "$(stamp) $*" | tee -a "$LOG"; }

if [ "${REFRESH_REBUILD:-0}" = "1" ]; then
  "$FUSEREC" profiles build --json > /dev/null
  log "profiles: full rebuild"
elif "$FUSEREC" profiles update --json > /dev/null 2>"$LOG.err"; then
  log "profiles: incremental update"
elif grep -q "no profiles were built yet" "$LOG.err"; then
  "$FUSEREC" profiles build --json > /dev/null
  log "profiles: first full build"
else
  cat "$LOG.err" >&2
  exit 1
fi
rm -f "$LOG.err"

set +e
out=$("$FUSEREC" model train --json "$@" 2>"$LOG.err")
code=$?
set -e
cat "$LOG.err" >&2  # the training's progress
if [ $code -ne 0 ]; then
  log "training failed ($code): $(grep '^error:' "$LOG.err" | tail -n 1 | sed 's/^error: //')"
  rm -f "$LOG.err"
  exit $code
fi
rm -f "$LOG.err"
version=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
ndcg=$(printf '%s' "$out" | python3 -c 'import json,sys; t=json.load(sys.stdin)["test"]["overall"]["metrics"]; print("mlp %.4f engine %.4f" % (t["mlp"]["ndcg@10"], t["engine"]["ndcg@10"]))')
log "trained $version: test ndcg@10 $ndcg"

# the same impressions file as the training, should the active model need scoring on the new test searches
promote_args=()
prev=""
for arg in "$@"; do
  if [ "$prev" = "--impressions" ]; then promote_args+=(--impressions "$arg"); fi
  case "$arg" in --impressions=*) promote_args+=("$arg") ;; esac
  prev=$arg
done
set +e
promote=$("$FUSEREC" model promote "$version" ${promote_args[@]+"${promote_args[@]}"} 2>&1 | tail -n 1)
code=$?
set -e
if [ $code -eq 0 ]; then
  log "promoted $version: $promote"
elif [ $code -eq 9 ]; then
  log "kept the active model: $promote"
else
  log "promote failed ($code): $promote"
  exit $code
fi
