#!/usr/bin/env bash
# Regenerates generated/ (jextract's FFM bindings for oneDNN's C API) from the headers
# inside the pinned oneDNN artifact. Needs an installed jextract ($JEXTRACT, or on PATH);
# the build and CI never run this: generated/ is committed and must not be edited by hand.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
jextract=${JEXTRACT:-$(command -v jextract || true)}
[ -n "$jextract" ] && [ -x "$jextract" ] || {
  echo "generate-bindings: no jextract found; set JEXTRACT=/path/to/bin/jextract or put it on PATH" >&2; exit 1; }

# The oneDNN artifact version is pinned once, in pom.xml.
version=$(sed -n 's:.*<dnnl.artifact.version>\(.*\)</dnnl.artifact.version>.*:\1:p' "$root/pom.xml")
[ -n "$version" ] || { echo "generate-bindings: dnnl.artifact.version not found in pom.xml" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$root/scripts/mvn" -q dependency:copy -Dartifact="org.bytedeco:dnnl:$version:jar:linux-x86_64" \
  -DoutputDirectory="$work" -Dmdep.overWriteIfNewer=true >&2
unzip -q "$work/dnnl-$version-linux-x86_64.jar" 'org/bytedeco/dnnl/linux-x86_64/include/*' -d "$work"
include="$work/org/bytedeco/dnnl/linux-x86_64/include"

out="$root/generated"
package=dev.panorm.internal.dnnl
rm -rf "$out"
mkdir -p "$out"
"$jextract" \
  --output "$out" \
  --target-package "$package" \
  --header-class-name Dnnl \
  -I "$include" \
  @"$root/scripts/bindings/dnnl-symbols.txt" \
  "$root/scripts/bindings/panorm_dnnl.h"

onednn=$(sed -n 's/^#define DNNL_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$include/oneapi/dnnl/dnnl_version.h" | paste -sd.)
{
  echo "# Written by scripts/generate-bindings.sh; do not edit anything under generated/ by hand."
  echo "jextract=$("$jextract" --version 2>&1 | head -n 1 | sed 's/^jextract //')"
  echo "jextract.libclang=$("$jextract" --version 2>&1 | sed -n 's/^LibClang version //p')"
  echo "onednn=$onednn"
  echo "onednn.artifact=org.bytedeco:dnnl:$version:linux-x86_64"
  echo "package=$package"
} > "$out/BINDINGS.properties"
echo "generate-bindings: wrote $(find "$out" -name '*.java' | wc -l) files to generated/ (oneDNN $onednn)" >&2
