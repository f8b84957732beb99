#!/usr/bin/env bash
# The soak: creates and closes LayerNorms and runs millions of calls for SECONDS (default 180),
# sampling the process's RSS and the JVM's native memory tracking every second; exits 1 if either
# grows past its bound after warm-up or a result is wrong (docs/soak.md). Not part of `scripts/mvn verify`.
# JAVA_OPTS is passed to the JVM (e.g. -Dsoak.freshThreads=false).
# Usage: scripts/soak.sh [SECONDS]   (at least 120)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-180}
# Shorter runs end the warm-up (a quarter of the run, at most 30 s) while memory still ramps up (Soak.MIN_SECONDS).
if [ $# -gt 1 ] || ! [[ $seconds =~ ^[1-9][0-9]{0,6}$ ]] || ((seconds < 120)); then
  echo "usage: scripts/soak.sh [SECONDS]   (a whole number of seconds, at least 120, default 180; got '$*')" >&2
  exit 2
fi
. "$root/scripts/java-env.sh"
panorm_find_java
cd "$root"
"$root/scripts/mvn" -q -DskipTests package >&2 # compiles the test sources too, where the soak lives
# oneDNN's primitive cache (1024 primitives by default) would fill for minutes with the soak's
# thousands of shapes: bounded, but it hides panorm's own growth. Without it, every plan panorm
# drops must free its primitives for memory to stay flat.
export ONEDNN_PRIMITIVE_CACHE_CAPACITY=${ONEDNN_PRIMITIVE_CACHE_CAPACITY:-0}
# A small fixed heap, touched up front: RSS growth is then native memory, and young collections
# (which let the Cleaner free abandoned LayerNorms) come several times a second.
# shellcheck disable=SC2086 # JAVA_OPTS is a list of options
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector \
  -XX:NativeMemoryTracking=summary -Xms64m -Xmx64m -XX:+AlwaysPreTouch ${JAVA_OPTS:-} \
  -cp "target/test-classes:target/classes:target/lib/*" dev.panorm.Soak "$seconds"
