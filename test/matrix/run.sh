#!/usr/bin/env bash
# The compatibility matrix: the conformance and cluster suites once per server, each in a local
# image (bookworm: Redis 7.0; trixie: Redis 8.0 and Valkey 8.1). Prints each server's version,
# result and time, then one closing "matrix: N passed, N failed" line (counted in tests).
set -uo pipefail
cd "$(dirname "$0")/../.."

bookworm=$(bash test/support/bootstrap.sh) || exit 1
started=$(date +%s)
mapfile -t trixie < <(bash test/support/build-images.sh) || exit 1
echo "matrix: images ready in $(( $(date +%s) - started )) s"

# image, server binary inside it
servers=("$bookworm redis-server" "${trixie[0]} redis-server" "${trixie[1]} valkey-server")
passed=0 failed=0 summary=()
for entry in "${servers[@]}"; do
  read -r image bin <<<"$entry"
  version=$(docker run --rm "$image" "$bin" --version | grep -o 'v=[0-9.]*')
  log=$(mktemp)
  started=$(date +%s)
  REDIS_IMAGE=$image REDIS_SERVER_BIN=$bin node --import tsx node_modules/uvu/bin.js test '(conformance|cluster)\.test\.ts$' >"$log" 2>&1
  status=$?
  seconds=$(( $(date +%s) - started ))
  cat "$log"
  total=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/Total:/ { print $2 }')
  ok=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | awk '/Passed:/ { print $2 }')
  total=${total:-0} ok=${ok:-0}
  # A suite that crashed before uvu's summary counts as one failure.
  if [ "$status" -ne 0 ] && [ "$ok" -eq "$total" ]; then total=$(( total + 1 )); fi
  passed=$(( passed + ok )) failed=$(( failed + total - ok ))
  summary+=("$(printf '%-34s %-14s %-8s %3d/%-3d passed  %4d s' "$image" "$bin" "$version" "$ok" "$total" "$seconds")")
  rm -f "$log"
done
printf '\nmatrix results\n'
printf '  %s\n' "${summary[@]}"
echo "matrix: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
