#!/usr/bin/env bash
# Reproduces docs/paper.md: the claims of "Layer Normalization" (Ba, Kiros & Hinton, 2016) measured with
# panorm on the UCI handwritten digits. Builds target/panorm.jar if it is missing or older than the sources,
# fetches the data set once (see below), then runs dev.panorm.examples.paper.PaperExample with the options
# given here (--help lists them; results go to target/paper by default). JAVA_OPTS is passed to the JVM.
#
# The data: scikit-learn's copy of the UCI "Optical Recognition of Handwritten Digits" test set
# (sklearn/datasets/data/digits.csv.gz: 1,797 8x8 images), taken from Debian's python3-sklearn package
# with `apt-get download` (no root, no Python) and cached in $PANORM_CACHE_DIR/data, by default
# ~/.cache/panorm/data. An installed python3-sklearn's copy is used if present. Set PANORM_DIGITS to
# use a file you already have. It is never committed to this repository.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/java-env.sh"
panorm_find_java

jar="$root/target/panorm.jar"
panorm_build_jar paper

# --help, --synthetic and --data need no digits: run them as given, without fetching anything.
for arg in "$@"; do
  case "$arg" in
    -h | --help | --synthetic | --data)
      # shellcheck disable=SC2086 # JAVA_OPTS is a list of options
      exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector ${JAVA_OPTS:-} \
        -cp "$jar:$root/target/lib/*" dev.panorm.examples.paper.PaperExample "$@"
      ;;
  esac
done

member=usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
cache="${PANORM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/panorm}/data"
if [ -n "${PANORM_DIGITS:-}" ] && [ ! -f "$PANORM_DIGITS" ]; then
  echo "paper: PANORM_DIGITS=$PANORM_DIGITS is not a file" >&2
  exit 1
fi
digits="${PANORM_DIGITS:-$cache/digits.csv.gz}"
if [ ! -f "$digits" ]; then
  mkdir -p "$cache"
  if [ -f "/$member" ]; then
    echo "paper: copying the digits from the installed python3-sklearn (/$member) to $digits" >&2
    cp "/$member" "$digits.tmp.$$"
  else
    echo "paper: fetching the digits: apt-get download python3-sklearn, then unpacking $member" >&2
    work=$(mktemp -d)
    if ! (cd "$work" && apt-get download python3-sklearn >&2); then
      rm -rf "$work"
      echo "paper: apt-get download python3-sklearn failed; on Debian or Ubuntu run 'sudo apt-get update' first," >&2
      echo "paper: or set PANORM_DIGITS to a copy of scikit-learn's $member" >&2
      exit 1
    fi
    deb=$(ls "$work"/python3-sklearn_*.deb)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" "./$member" "./usr/share/doc/python3-sklearn/copyright"
    cp "$work/$member" "$digits.tmp.$$"
    cp "$work/usr/share/doc/python3-sklearn/copyright" "$cache/python3-sklearn.copyright"
    # Where it came from, beside it.
    printf '%s\n' "digits.csv.gz: from $(basename "$deb") (Debian python3-sklearn), member /$member." \
      "scikit-learn's copy of the test set of the UCI Optical Recognition of Handwritten Digits data set" \
      "(E. Alpaydin, C. Kaynak, 1998; https://archive.ics.uci.edu/dataset/80, CC BY 4.0);" \
      "the package's terms: python3-sklearn.copyright (BSD-3-Clause)." > "$cache/digits.SOURCE"
    rm -rf "$work"
  fi
  mv "$digits.tmp.$$" "$digits"
fi

# shellcheck disable=SC2086 # JAVA_OPTS is a list of options
exec "$JAVA_HOME/bin/java" --enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector ${JAVA_OPTS:-} \
  -cp "$jar:$root/target/lib/*" dev.panorm.examples.paper.PaperExample --data "$digits" "$@"
