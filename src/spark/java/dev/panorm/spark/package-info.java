/**
 * Apache Spark: normalizing an embedding column of a {@link org.apache.spark.sql.Dataset} on the executors
 * with panorm's kernels ({@link dev.panorm.spark.SparkLayerNorm}).
 *
 * <p>A class-path package: Spark runs on the class path, and its jars cannot be named modules, so this
 * package is outside module {@code dev.panorm} (see module-info.java). Spark is a provided dependency; the
 * executors need panorm's jar and its oneDNN jars, and the JVM flags {@code spark-submit} already adds
 * ({@code docs/spark.md}).
 *
 * <p>Guide: {@code docs/spark.md}.
 */
package dev.panorm.spark;
