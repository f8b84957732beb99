/**
 * Layer normalization of embeddings stored in Apache Arrow: a {@code FixedSizeListVector} of float32, one
 * embedding per row, as Arrow and Parquet pipelines store them. {@link dev.panorm.arrow.ArrowLayerNorm}
 * hands the vector's own off-heap buffers to a {@link dev.panorm.LayerNorm}, in place or into another
 * vector, without copying.
 *
 * <!-- snippet: given FixedSizeListVector embeddings; BufferAllocator allocator -->
 * {@snippet :
 * // embeddings: FixedSizeList<Float32>[768], e.g. from an ArrowStreamReader or a Parquet reader
 * try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(768).withoutAffine())) {
 *     ArrowLayerNorm.normalizeInPlace(norm, embeddings, null, null);
 *     // or: try (FixedSizeListVector normalized =
 *     //          ArrowLayerNorm.normalizeIntoNew(norm, embeddings, allocator, null, null)) { ... }
 * }
 * }
 *
 * <p>Arrow is an optional dependency of panorm: add {@code org.apache.arrow:arrow-vector} and an allocator
 * ({@code arrow-memory-unsafe} or {@code arrow-memory-netty}) to use this package; the rest of panorm never
 * loads it. This package needs no JVM flag of its own; Arrow's IPC readers and writers need
 * {@code --add-opens=java.base/java.nio=ALL-UNNAMED} ({@code docs/arrow.md}).
 *
 * <p>Guide: {@code docs/arrow.md}.
 */
package dev.panorm.arrow;
