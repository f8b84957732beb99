#!/usr/bin/env bash
# Checks that `spark-submit --packages dev.panorm:panorm:VERSION` brings panorm and its two oneDNN jars
# (classifier linux-x86_64) to a Spark application and its executors (docs/spark.md, "Shipping panorm").
# Needs Maven Central. Usage: scripts/spark-packages.sh
# Installs target/panorm.jar with its pom into a throwaway Maven repository, compiles a tiny application that
# does not contain panorm, and runs Spark's SparkSubmit from the Maven jars with --packages and --repositories
# on local-cluster[1,1,1024] (one executor in a JVM of its own). Ivy gets an empty home, so that oneDNN's jars
# come from Maven Central, not from ~/.m2. Everything is written under target/spark-packages.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$root/scripts/java-env.sh"
panorm_find_java
panorm_build_jar spark-packages
panorm_spark_classpath spark-packages
spark_classpath=$(cat "$root/target/spark.classpath")
version=$(sed -n 's:^  <version>\(.*\)</version>$:\1:p' "$root/pom.xml" | head -1)
# The JVM options spark-submit's launcher gives the driver (Spark's JavaModuleOptions, panorm's two included).
flags=$(sed -n 's:.*<spark.test.jvm.flags>\(.*\)</spark.test.jvm.flags>.*:\1:p' "$root/pom.xml")

work="$root/target/spark-packages"
rm -rf "$work"
mkdir -p "$work/app/check" "$work/classes" "$work/home" "$work/spark-home/jars"
"$root/scripts/mvn" -q org.apache.maven.plugins:maven-install-plugin:3.1.4:install-file \
  -Dfile="$root/target/panorm.jar" -DpomFile="$root/pom.xml" -DlocalRepositoryPath="$work/m2"

cat >"$work/app/check/PackagesCheck.java" <<'EOF'
package check;

import dev.panorm.Backend;
import dev.panorm.LayerNormConfig;
import dev.panorm.spark.SparkLayerNorm;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/** Normalizes 100 rows on the executors with oneDNN (which fails rather than fall back if it cannot load). */
public class PackagesCheck {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("panorm --packages check").getOrCreate();
        int c = 64;
        List<Row> rows = new ArrayList<>();
        for (int r = 0; r < 100; r++) {
            float[] x = new float[c];
            for (int i = 0; i < c; i++) {
                x[i] = (float) Math.sin(r * 31 + i) * (1 + r % 5) + r % 7;
            }
            rows.add(RowFactory.create(r, x));
        }
        StructType schema = new StructType()
                .add("id", DataTypes.IntegerType)
                .add("emb", DataTypes.createArrayType(DataTypes.FloatType, false));
        List<Row> out = SparkLayerNorm.of(LayerNormConfig.of(c))
                .backend(Backend.ONEDNN)
                .apply(spark.createDataFrame(rows, schema).repartition(4), "emb", "emb")
                .collectAsList();
        double worst = 0;
        for (Row row : out) {
            double sum = 0, squares = 0;
            for (float y : row.<Float>getList(1)) {
                sum += y;
                squares += (double) y * y;
            }
            double mean = sum / c;
            worst = Math.max(worst, Math.max(Math.abs(mean), Math.abs(squares / c - mean * mean - 1)));
        }
        spark.stop();
        System.out.println("PackagesCheck: " + out.size() + " rows normalized with oneDNN on the executors;"
                + " largest |mean| or |variance - 1|: " + worst);
        System.exit(out.size() == 100 && worst < 1e-3 ? 0 : 1);
    }
}
EOF
"$JAVA_HOME/bin/javac" -d "$work/classes" -cp "$root/target/panorm.jar:$spark_classpath" "$work/app/check/PackagesCheck.java"
"$JAVA_HOME/bin/jar" cf "$work/app.jar" -C "$work/classes" .

# local-cluster's worker launches executors from $SPARK_HOME/jars: a folder of links stands in for it.
IFS=: read -ra spark_jars <<<"$spark_classpath"
ln -s "${spark_jars[@]}" "$work/spark-home/jars/"

cd "$work"
# shellcheck disable=SC2086 # the flags are a list of options
SPARK_HOME="$work/spark-home" SPARK_SCALA_VERSION=2.13 SPARK_LOCAL_IP=127.0.0.1 timeout 600 \
  "$JAVA_HOME/bin/java" $flags -Duser.home="$work/home" \
  -Dlog4j2.configurationFile="$root/scripts/spark-log4j2.properties" -cp "$spark_classpath" \
  org.apache.spark.deploy.SparkSubmit --master 'local-cluster[1,1,1024]' \
  --packages "dev.panorm:panorm:$version" --repositories "file://$work/m2" \
  --conf spark.jars.ivy="$work/ivy" --conf spark.executorEnv.PANORM_CACHE_DIR="$work/executor-cache" \
  --class check.PackagesCheck "$work/app.jar"

echo "spark-packages: jars that --packages resolved: $(ls "$work/ivy/jars" | tr '\n' ' ')"
# Only an executor has PANORM_CACHE_DIR: oneDNN's libraries there were loaded from the --packages jars.
if ! ls "$work"/executor-cache/*/libdnnl.so.3 >/dev/null 2>&1; then
  echo "spark-packages: FAILED: no executor extracted oneDNN into $work/executor-cache" >&2
  exit 1
fi
echo "spark-packages: OK: the executor extracted $(ls "$work"/executor-cache/*/ | tr '\n' ' ')"
