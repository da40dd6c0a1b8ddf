#!/usr/bin/env bash
# The compatibility matrix: the conformance, cluster, live-resharding and guarantees suites once per server, each in a local
# image (bookworm: Redis 7.0; trixie: Redis 8.0 and Valkey 8.1), through test/run.ts. Prints, per
# server, its version, passed / failed / not run and time, then one closing
# "matrix: N passed, N failed" line (a declared test that never ran counts as failed).
set -euo pipefail
cd "$(dirname "$0")/../.."

bookworm=$(bash test/support/bootstrap.sh)
started=$(date +%s)
trixie_images=$(bash test/support/build-images.sh)
mapfile -t trixie <<<"$trixie_images"
echo "matrix: images ready in $(( $(date +%s) - started )) s"

totals=$(mktemp)
trap 'rm -f "$totals"' EXIT
# image, server binary inside it
servers=("$bookworm redis-server" "${trixie[0]} redis-server" "${trixie[1]} valkey-server")
summary=()
for entry in "${servers[@]}"; do
  read -r image bin <<<"$entry"
  version=$(docker run --rm "$image" "$bin" --version | grep -o 'v=[0-9.]*')
  started=$(date +%s)
  REDIS_IMAGE=$image REDIS_SERVER_BIN=$bin TEST_TOTALS_FILE=$totals \
    node --import tsx test/run.ts '(conformance|cluster|cluster-reshard|guarantees)\.test\.ts$' --label "matrix $bin $version" || true
  seconds=$(( $(date +%s) - started ))
  # The runner appended {label, passed, failed, notRun, other}; none means it never got that far.
  line=$(grep -F "\"matrix $bin $version\"" "$totals" || echo '{"passed":0,"failed":0,"notRun":0,"other":1}')
  read -r p f n o < <(node -p 'const t = JSON.parse(process.argv[1]); [t.passed, t.failed, t.notRun, t.other].join(" ")' "$line")
  summary+=("$(printf '%-34s %-14s %-8s %4d passed %3d failed %3d not run %2d other  %4d s' "$image" "$bin" "$version" "$p" "$f" "$n" "$o" "$seconds")")
done
printf '\nmatrix results\n'
printf '  %s\n' "${summary[@]}"
# .ci/run adds up every runner's totals: hand ours on.
if [ -n "${TEST_TOTALS_FILE:-}" ]; then cat "$totals" >>"$TEST_TOTALS_FILE"; fi
read -r passed failed < <(node test/support/totals.mjs "$totals" 3)
echo "matrix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
