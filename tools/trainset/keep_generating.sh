#!/usr/bin/env bash
# Rerun generate.py until OUT holds TARGET_GROUPS finished groups, so sources that another job is
# still adding to the --sources folders are picked up (each rerun plans only what is missing).
#   OUT=../trainset/gen TARGET_GROUPS=400 nohup nice -n 10 tools/trainset/keep_generating.sh \
#     --dev-manifest ../shared/bench/dev/manifest.csv --sources ../trainset/sources &
# Everything after the variables is passed to generate.py (give neither --out nor --groups).
set -u
PY=${PY:-../trainset/venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
: "${OUT:?set OUT}" "${TARGET_GROUPS:?set TARGET_GROUPS}"
WAIT_S=${WAIT_S:-300}
while true; do
  "$PY" "$HERE/generate.py" --out "$OUT" --groups "$TARGET_GROUPS" "$@"
  done_n=$(find "$OUT/groups" -name '*.json' | wc -l)
  echo "$(date -Is) $done_n/$TARGET_GROUPS groups done; next pass in ${WAIT_S}s"
  [ "$done_n" -ge "$TARGET_GROUPS" ] && break
  sleep "$WAIT_S"
done
