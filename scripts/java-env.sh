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

# Builds target/panorm.jar (and target/lib) if missing or older than the sources, saying so on stderr as $1.
panorm_build_jar() {
  local name=$1 root jar
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  jar="$root/target/panorm.jar"
  if [ ! -f "$jar" ] || [ ! -d "$root/target/lib" ]; then
    echo "$name: building $jar (once; this takes a minute)..." >&2
    "$root/scripts/mvn" -q -DskipTests package >&2
  elif [ -n "$(find "$root/src/main" "$root/src/spark/java" "$root/generated" "$root/pom.xml" -newer "$jar" -print -quit 2>/dev/null)" ]; then
    echo "$name: sources changed since $jar was built; rebuilding..." >&2
    "$root/scripts/mvn" -q -DskipTests package >&2
  fi
}

# Writes Spark's class path (a provided dependency, so target/lib does not hold it) into
# target/spark.classpath if it is missing or older than pom.xml, saying so on stderr as $1.
panorm_spark_classpath() {
  local name=$1 root classpath
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  classpath="$root/target/spark.classpath"
  if [ ! -s "$classpath" ] || [ "$root/pom.xml" -nt "$classpath" ]; then
    echo "$name: resolving Spark's class path into $classpath (once)..." >&2
    "$root/scripts/mvn" -q dependency:build-classpath -Dmdep.includeScope=compile -Dmdep.outputFile="$classpath" >&2
  fi
}

# Runs java with the arguments after the first two (a class path of jars only) and a class-data archive (the JDK's
# CDS) that starts the JVM sooner: the first run writes an archive of the classes it loaded into folder $1, later runs
# map it. Key $2 (text that changes with the jars and the JDK) names the archive, since the JVM ignores one that no
# longer matches, at the old cost; archives of other keys are removed. The JVM always replaces this shell (exec), so
# signals, exit codes and the standard streams are the JVM's own, and a killed launcher leaves no JVM behind. A first
# run's JVM writes its archive under a private name (ending in its process id, which is this shell's) when it exits; a
# later run puts it in place once the JVM has finished writing it, which the header shows (with its magic number, it
# is written last), and removes one left unfinished once its writer is gone. The JVM maps an archive unchecked (a
# damaged one crashes it; its own check, VerifySharedSpaces, costs about as much as the archive saves), so the
# archive's size, time and inode are kept beside it when it is put in place, and an archive that changed since is
# written again. Off with PANORM_CDS=0, when JAVA_OPTS, JAVA_TOOL_OPTIONS or JDK_JAVA_OPTIONS set class sharing or
# load an agent, or when the folder is not writable or has less than 64 MiB free. Never returns.
panorm_exec_java() {
  local folder=$1 key=$2 archive part
  shift 2
  # Options that set class sharing themselves, and agents (a JVM asked to archive with an agent refuses to start)
  case " ${JAVA_OPTS:-} ${JAVA_TOOL_OPTIONS:-} ${JDK_JAVA_OPTIONS:-} " in
    *-Xshare* | *SharedArchiveFile* | *ArchiveClassesAtExit* | *DynamicDump* | *AOTCache* | *AOTMode* | *-javaagent* | \
      *-agentlib* | *-agentpath* | *-Xrun*) folder= ;;
  esac
  archive="$folder/panorm-cds-$(printf '%s' "$key" | cksum | cut -d' ' -f1).jsa"
  if [ "${PANORM_CDS:-1}" = 0 ] || [ -z "$folder" ] || [ ! -d "$folder" ] || [ ! -w "$folder" ] || [ -d "$archive" ]
  then
    exec "$JAVA_HOME/bin/java" "$@"
  fi
  for part in "$folder"/panorm-cds-*.part-*; do
    [ -f "$part" ] || continue
    if [ "${part%.part-*}" = "$archive" ] && [ "$(od -An -tx4 -N4 "$part" 2>/dev/null)" = " f00baba8" ]; then
      for old in "$folder"/panorm-cds-*.jsa; do
        [ "$old" = "$archive" ] || rm -f "$old" "$old.stamp" 2>/dev/null
      done
      if mv -fT "$part" "$archive" 2>/dev/null && panorm_cds_stamp "$archive" > "$archive.stamp.part-$$"; then
        mv -fT "$archive.stamp.part-$$" "$archive.stamp" 2>/dev/null
      fi
      rm -f "$archive.stamp.part-$$"
    elif [ "${part##*.part-}" = $$ ] || [ ! -e "/proc/${part##*.part-}" ]; then
      rm -f "$part" # another key's, or a JVM killed before it finished writing (not one still writing)
    fi
  done
  if [ -f "$archive" ] && [ "$(panorm_cds_stamp "$archive")" = "$(cat "$archive.stamp" 2>/dev/null)" ]; then
    exec "$JAVA_HOME/bin/java" -XX:SharedArchiveFile="$archive" -Xlog:cds*=off,aot*=off "$@"
  fi
  # A JVM that cannot write its archive (a full disk) says so and exits with status 1 after the command's own work,
  # whatever the command returned: a first run only with room to spare (the archive takes about 8 MiB).
  if [ "$(df -Pk "$folder" 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge 65536 ] 2>/dev/null; then
    exec "$JAVA_HOME/bin/java" -XX:ArchiveClassesAtExit="$archive.part-$$" -Xlog:cds*=off,aot*=off "$@"
  fi
  exec "$JAVA_HOME/bin/java" "$@"
}

# What the stamp beside an archive keeps of it: size, modification time and inode (see panorm_exec_java).
panorm_cds_stamp() {
  stat -c '%s %y %i' "$1" 2>/dev/null
}
