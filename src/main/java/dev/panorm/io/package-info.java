/**
 * NumPy {@code .npy} files as {@link dev.panorm.Tensor}s, through memory mapping, so no element is
 * copied onto the Java heap. {@link Npy#map} views a float32 or float16 C-order file read-only
 * without reading it; {@link Npy.Output} maps a temporary file beside the target for a result to be
 * computed straight into, reserving its disk space first (a full disk is an {@link java.io.IOException},
 * not a crash), and {@link Npy.Output#commit()} renames it over the target, so a failure never
 * leaves a partial file; {@link Npy#write} does both for a tensor already in memory. Headers are
 * untrusted input: every problem is an {@link NpyFormatException} naming the file and what is wrong.
 *
 * <p>Guide: {@code docs/pipelines.md} (.npy files).
 */
package dev.panorm.io;
