#!/usr/bin/env bash
# Runs panorm's JMH benchmarks (src/jmh/java) and, with --native, the C baseline first.
# Usage: scripts/bench.sh [--native] [JMH arguments...]
#   scripts/bench.sh                                  # the whole suite (about 40 minutes)
#   scripts/bench.sh LayerNormBenchmark.forward -p dtype=f32 -p shape=1x768,8x768
#   scripts/bench.sh -prof gc LayerNormBenchmark      # allocation per call (gc.alloc.rate.norm)
#   scripts/bench.sh -l                               # list the benchmarks
# JSON results go to target/bench/jmh.json (override with -rff FILE); the C baseline's lines to
# target/bench/native.tsv. Builds what it needs first (Maven profile 'bench', native/build.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/java-env.sh"
panorm_find_java
# No cd: a relative -rff FILE is the caller's, relative to where they are.
if [ "${1:-}" = "--help" ]; then # JMH knows -h only
  sed -n '2,9s/^# \{0,1\}//p' "$0"
  set -- -h
fi
mkdir -p "$root/target/bench"
if [ "${1:-}" = "--native" ]; then
  shift
  "$root/native/build.sh" >&2
  # Both process kinds: glibc's malloc, which oneDNN calls several times per call, takes locks
  # only once a process has a second thread, as every JVM has.
  for process in "" --multithreaded-process; do
    "$root/native/build/layernorm_bench" $process --pass forward,training,backward --dtype f32,bf16 --threads 1,2 --copy 256
  done | tee "$root/target/bench/native.tsv"
fi
"$root/scripts/mvn" -q -Pbench -DskipTests test-compile >&2
classpath="$root/target/test-classes:$root/target/classes:$(cat "$root/target/benchmarks.classpath")"
args=("$@")
case " ${args[*]-} " in
  *" -l "*|*" -h "*|*" -rf "*) ;;
  *" -rff "*) args=(-rf json "${args[@]}") ;;
  *) args=(-rf json -rff "$root/target/bench/jmh.json" "${args[@]+"${args[@]}"}") ;;
esac
exec "$JAVA_HOME/bin/java" -cp "$classpath" org.openjdk.jmh.Main "${args[@]}"
