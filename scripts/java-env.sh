# Sourced by panorm's scripts: finds a JDK >= 25 (panorm uses the FFM API, final since 22, and is built for release 25) and exports JAVA_HOME.
# Order: $JAVA_HOME if it qualifies, else the newest qualifying JDK under /usr/lib/jvm.

panorm_java_major() { # prints the feature version of the JDK at $1, or nothing
  local home=$1 version=
  [ -x "$home/bin/java" ] && [ -x "$home/bin/javac" ] || return 0
  if [ -f "$home/release" ]; then
    version=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")
  fi
  if [ -z "$version" ]; then
    version=$("$home/bin/java" -XshowSettings:properties -version 2>&1 |
      sed -n 's/^ *java.specification.version = //p')
  fi
  version=${version#1.}   # 1.8 -> 8
  echo "${version%%[.+-]*}"
}

panorm_find_java() {
  local candidate major
  for candidate in "${JAVA_HOME:-}" $(ls -d /usr/lib/jvm/*/ 2>/dev/null | sort -rV); do
    [ -n "$candidate" ] || continue
    candidate=${candidate%/}
    major=$(panorm_java_major "$candidate")
    if [ -n "$major" ] && [ "$major" -ge 25 ] 2>/dev/null; then
      export JAVA_HOME=$candidate
      export PATH="$JAVA_HOME/bin:$PATH"
      return 0
    fi
  done
  echo "panorm: no JDK 25 or newer found (JAVA_HOME=${JAVA_HOME:-unset}, nothing suitable under /usr/lib/jvm)." >&2
  echo "panorm: install one (e.g. Temurin 25) and set JAVA_HOME to it." >&2
  return 1
}
