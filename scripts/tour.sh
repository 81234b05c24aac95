#!/usr/bin/env bash
# Runs the README's tour exactly as written (the commands of its first bash block after the
# heading, minus the install line), in a throw-away folder with its own embedded engine, so the README can
# never drift from what works. Usage: scripts/tour.sh   (or `make tour`, which installs .venv first)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$repo/.venv/bin:$PATH"
work=$(mktemp -d)
export FUSEREC_STATE_DIR="$work/state"
unset FUSEREC_OPENSEARCH_URL
trap 'fuserec engine stop --no-save >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

commands=$(awk '/^## A tour/{t=1} t&&/^```bash/{b=1;next} t&&b&&/^```/{exit} t&&b' "$repo/README.md" \
  | grep -v '^make install')
cd "$work"
started=$(date +%s)
while IFS= read -r line; do
  [ -z "$line" ] && continue
  cmd="${line%%  #*}"            # drop the aligned comment
  echo "\$ $cmd"
  bash -euo pipefail -c "$cmd"
done <<< "$commands"
took=$(( $(date +%s) - started ))
echo "tour finished: every README tour command succeeded in ${took} s ($(( took / 60 )) min $(( took % 60 )) s)"
