package dev.panorm.spark;

import org.apache.spark.sql.Column;

/**
 * Spark ML vector columns to and from {@code array<float>}. Apart from {@link SparkLayerNorm} so that
 * spark-mllib, which only vector columns need, is loaded only for them.
 */
final class VectorColumns {
    private VectorColumns() {}

    static Column toFloatArray(Column vectors) {
        return org.apache.spark.ml.functions.vector_to_array(vectors, "float32");
    }

    /** Dense vectors (of doubles, as Spark ML stores them). */
    static Column fromFloatArray(Column arrays) {
        return org.apache.spark.ml.functions.array_to_vector(arrays);
    }
}
