#!/usr/bin/env bash
# Compares builds of panorm under JMH, alternating them fork by fork so that a busy machine's load falls
# on all of them alike, and prints each one's median and best iteration and the ratios to the first.
# Usage: scripts/bench-compare.sh ROUNDS OUTDIR CHECKOUT... -- JMH arguments
#   e.g. git worktree add /tmp/old 0a0d54e && (cd /tmp/old && scripts/mvn -q -Pbench -DskipTests test-compile)
#        scripts/bench-compare.sh 5 target/compare /tmp/old . -- LayerNormBenchmark.forward -p dtype=f32 \
#          -p shape=1x768,8x768,512x1024 -p impl=onednn-1t,java-1t -f 1 -wi 4 -w 300ms -i 5 -r 200ms
# Each CHECKOUT must have been built with the bench profile (scripts/bench.sh does that for this one).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/java-env.sh"
panorm_find_java
usage() { echo "usage: $0 ROUNDS OUTDIR CHECKOUT... -- JMH arguments" >&2; exit 2; }
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then # asked for: the header, on stdout, as bench.sh does
  sed -n '2,8s/^# \{0,1\}//p' "$0"
  exit 0
fi
[ "$#" -ge 2 ] || usage
rounds=$1 out=$2
shift 2
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "$0: ROUNDS must be a whole number >= 1, got '$rounds'" >&2; exit 2; }
checkouts=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  [ -f "$1/target/benchmarks.classpath" ] || { echo "$0: $1 is not a checkout built with -Pbench" >&2; exit 2; }
  checkouts+=("$(cd "$1" && pwd)")
  shift
done
[ "$#" -gt 0 ] && [ "${#checkouts[@]}" -gt 0 ] || usage
shift
mkdir -p "$out"
out=$(cd "$out" && pwd) # each fork runs in its checkout
for round in $(seq 1 "$rounds"); do
  for i in "${!checkouts[@]}"; do
    dir=${checkouts[$i]}
    classpath="$dir/target/test-classes:$dir/target/classes:$(cat "$dir/target/benchmarks.classpath")"
    (cd "$dir" && "$JAVA_HOME/bin/java" -cp "$classpath" org.openjdk.jmh.Main "$@" -rf json \
      -rff "$out/$i-$round.json" > "$out/$i-$round.txt" 2>&1) || echo "${checkouts[$i]} round $round failed" >&2
  done
done
python3 - "$out" "${checkouts[@]}" <<'PY'
import glob, json, os, statistics, sys
out, names = sys.argv[1], sys.argv[2:]
results = {i: [b for f in glob.glob(f"{out}/{i}-*.json") if os.path.getsize(f) for b in json.load(open(f))]
           for i in range(len(names))}
if not any(results.values()):
    sys.exit(f"no results: see {out}/*.txt")
# Parameters that only some builds have (a newer benchmark's) do not split the comparison.
common = set.intersection(*(set(b.get("params", {})) for bs in results.values() for b in bs))
runs = {}
for i, bs in results.items():
    for b in bs:
        key = b["benchmark"].split(".")[-1] + " " + " ".join(
            f"{k}={v}" for k, v in sorted(b.get("params", {}).items()) if k in common)
        for fork in b["primaryMetric"]["rawData"]:
            runs.setdefault(key, {}).setdefault(i, []).extend(fork)
for key, by in sorted(runs.items()):
    print(key)
    base = by.get(0)
    for i, name in enumerate(names):
        if i in by:
            med, best = statistics.median(by[i]), min(by[i])
            ratio = f"  x{med / statistics.median(base):.3f} median, x{best / min(base):.3f} best" if base else ""
            print(f"  {name}: median {med:.3f}, best {best:.3f} (n={len(by[i])}){ratio}")
PY
