#!/usr/bin/env bash
# Builds the native baseline (native/layernorm_bench.c) with the system's C compiler against the headers
# and shared libraries of the oneDNN artifact that panorm pins in pom.xml, so C and Java run the very same
# libdnnl.so.3. Output: native/build/layernorm_bench (the libraries sit next to it, in native/build/onednn), and
# native/build/fused_floor and fused_floor_avx2 (native/fused_floor.c: the fused residual add and norm in plain C
# with AVX-512 or AVX2, no oneDNN).
# Usage: native/build.sh    (then native/build/layernorm_bench --help, native/build/fused_floor 1x4096)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/native/build"
cc=${CC:-gcc}
command -v "$cc" >/dev/null || { echo "native/build.sh: no C compiler '$cc' (install gcc, or set CC)" >&2; exit 1; }
command -v unzip >/dev/null || { echo "native/build.sh: unzip is needed to unpack the oneDNN artifact" >&2; exit 1; }

# The pinned artifacts are the jars Maven copies into target/lib for the command line.
if ! ls "$root"/target/lib/dnnl-*-linux-x86_64.jar "$root"/target/lib/opencl-*-linux-x86_64.jar >/dev/null 2>&1; then
  echo "native/build.sh: fetching the pinned oneDNN artifact (scripts/mvn package)..." >&2
  "$root/scripts/mvn" -q -DskipTests package >&2
fi
dnnl_jar=$(ls "$root"/target/lib/dnnl-*-linux-x86_64.jar | head -1)
opencl_jar=$(ls "$root"/target/lib/opencl-*-linux-x86_64.jar | head -1)

rm -rf "$build/onednn.tmp"
mkdir -p "$build/onednn.tmp"
unzip -q -o "$dnnl_jar" 'org/bytedeco/dnnl/linux-x86_64/*' -d "$build/onednn.tmp"
unzip -q -o "$opencl_jar" 'org/bytedeco/opencl/linux-x86_64/libOpenCL.so.1' -d "$build/onednn.tmp"
lib="$build/onednn.tmp/lib"
mkdir -p "$lib"
mv "$build"/onednn.tmp/org/bytedeco/dnnl/linux-x86_64/{libdnnl.so.3,libgomp.so.1,include} "$lib/"
mv "$build"/onednn.tmp/org/bytedeco/opencl/linux-x86_64/libOpenCL.so.1 "$lib/"
rm -rf "$build/onednn"
mv "$lib" "$build/onednn"
rm -rf "$build/onednn.tmp"

"$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -Wall -Wextra -Werror \
  -I"$build/onednn/include" "$root/native/layernorm_bench.c" \
  "$build/onednn/libdnnl.so.3" "$build/onednn/libgomp.so.1" -lpthread \
  -Wl,-rpath,'$ORIGIN/onednn' -o "$build/layernorm_bench.tmp"
mv "$build/layernorm_bench.tmp" "$build/layernorm_bench"
echo "built $build/layernorm_bench (oneDNN from $(basename "$dnnl_jar"))"

# The same source for two instruction sets, each checked at run time: AVX-512F, and AVX2 with FMA.
for variant in "fused_floor -mavx512f -mfma" "fused_floor_avx2 -mavx2 -mfma"; do
  set -- $variant
  name=$1
  shift
  "$cc" -std=c11 -D_POSIX_C_SOURCE=200809L -O2 "$@" -Wall -Wextra -Werror \
    "$root/native/fused_floor.c" -lm -o "$build/$name.tmp"
  mv "$build/$name.tmp" "$build/$name"
  echo "built $build/$name"
done
