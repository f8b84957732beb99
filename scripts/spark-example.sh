#!/usr/bin/env bash
# Normalizes a Parquet data set of embeddings with panorm in Apache Spark (local mode), and measures it
# against the same normalization in Spark SQL, in a plain Java UDF, and an identity pass (docs/benchmarks.md,
# "Spark"). Usage: scripts/spark-example.sh [ROWS [DIM [DIR [SLOW_ROWS]]]]
#   ROWS       rows of the data set (default 1000000), DIM floats per row (default 768)
#   DIR        where the seeded data set is written once and reused (default target/spark-example)
#   SLOW_ROWS  rows the slow SQL pass runs on (default 100000; rates are per row)
# Builds target/panorm.jar if it is missing or older than the sources, and Spark's class path (Spark is a
# provided dependency, so target/lib does not hold it) into target/spark.classpath. JAVA_OPTS is passed to the
# JVM (default -Xmx4g); the data set of 1,000,000 x 768 takes about 3 GB of disk.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/java-env.sh"
panorm_find_java

jar="$root/target/panorm.jar"
panorm_build_jar spark-example
panorm_spark_classpath spark-example
classpath="$root/target/spark.classpath"

args=("$@")
# DIR is the caller's, relative to where they are; the JVM starts in the repository (its default DIR is there).
if [ $# -ge 3 ] && [[ $3 != /* ]]; then
  args[2]="$PWD/$3"
fi
cd "$root"
# shellcheck disable=SC2086 # JAVA_OPTS and the flags are lists of options
# The JVM options spark-submit gives every Spark JVM (Spark's JavaModuleOptions), panorm's two included.
exec "$JAVA_HOME/bin/java" --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
  --add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.lang.invoke=ALL-UNNAMED \
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.io=ALL-UNNAMED \
  --add-opens=java.base/java.net=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
  --add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED \
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/sun.nio.cs=ALL-UNNAMED \
  --add-opens=java.base/sun.util.calendar=ALL-UNNAMED \
  --sun-misc-unsafe-memory-access=allow -Dlog4j2.configurationFile="$root/scripts/spark-log4j2.properties" \
  ${JAVA_OPTS:--Xmx4g} \
  -cp "$jar:$root/target/lib/*:$(cat "$classpath")" dev.panorm.spark.example.SparkExample "${args[@]}"
