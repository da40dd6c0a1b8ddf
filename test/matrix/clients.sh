#!/usr/bin/env bash
# The client-library matrix: the Upstash suites at the lowest and at the newest @upstash/redis the
# peer range in package.json admits, the ioredis suites at the lowest and at the newest ioredis.
# Each version comes from the npm registry into a temporary copy of the project whose
# node_modules links to this one's, with the version under test in place of the installed one.
# Runs through test/run.ts (TEST_TOTALS_FILE, when set, gets one line per run, as in .ci/run);
# ends with one line per version and "clients: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

REDIS_IMAGE=$(bash test/support/bootstrap.sh)
export REDIS_IMAGE
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
totals=$work/totals
: >"$totals"

# package, which end of its peer range, test-file regex
runs=(
  "@upstash/redis lowest (integration/(upstash|conformance)|upstash/)"
  "@upstash/redis newest (integration/(upstash|conformance)|upstash/)"
  "ioredis lowest integration/(conformance|cluster)"
  "ioredis newest integration/(conformance|cluster)"
)
summary=()
for entry in "${runs[@]}"; do
  read -r pkg end regex <<<"$entry"
  range=$(node -p "require('./package.json').peerDependencies['$pkg']")
  # The lowest admitted version is the range's floor (^x.y.z); the newest, what npm resolves.
  spec=$pkg@$range
  [ "$end" = lowest ] && spec=$pkg@${range#^}
  copy=$work/$end-${pkg//\//-}
  mkdir -p "$copy/alt" "$copy/node_modules"
  started=$(date +%s)
  npm install --prefix "$copy/alt" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts "$spec" >/dev/null
  version=$(node -p "require('$copy/alt/node_modules/$pkg/package.json').version")
  cp -r src test lua scripts package.json tsconfig.json "$copy/"
  for dep in node_modules/* node_modules/@*/*; do
    case $dep in node_modules/@*/*) mkdir -p "$copy/$(dirname "$dep")" ;; node_modules/@*) continue ;; esac
    ln -s "$root/$dep" "$copy/$dep"
  done
  # Its own dependencies resolve next to it, under alt/ (Node follows the link to its real path).
  rm "$copy/node_modules/$pkg"
  ln -s "$copy/alt/node_modules/$pkg" "$copy/node_modules/$pkg"
  label="clients $pkg $version ($end admitted)"
  (cd "$copy" && TEST_TOTALS_FILE=$totals node --import tsx test/run.ts "$regex" --label "$label") || true
  [ -z "${TEST_TOTALS_FILE:-}" ] || grep -F "\"$label\"" "$totals" >>"$TEST_TOTALS_FILE" || true
  line=$(grep -F "\"$label\"" "$totals" || echo '{"passed":0,"failed":0,"notRun":0,"other":1}')
  read -r p f n o < <(node -p 'const t = JSON.parse(process.argv[1]); [t.passed, t.failed, t.notRun, t.other].join(" ")' "$line")
  summary+=("$(printf '%-16s %-8s %-7s (%s) %4d passed %3d failed %3d not run %2d other  %4d s' "$pkg" "$version" "$end" "$range" "$p" "$f" "$n" "$o" "$(( $(date +%s) - started ))")")
done
printf '\nclient matrix results\n'
printf '  %s\n' "${summary[@]}"
read -r passed failed < <(node test/support/totals.mjs "$totals" 4)
echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
