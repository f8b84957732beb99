/**
 * Streaming: {@link Pipeline} normalizes a tensor, or a sequence of chunks handed over by other code,
 * a chunk of rows at a time through a {@link dev.panorm.LayerNorm}, on one or several threads. Chunks
 * are views, never copies, and each chunk's memory-mapped pages are released once it is written, so
 * a file far larger than memory goes through with a resident set of about {@code parallelism x chunk}
 * bytes above the JVM's own.
 *
 * <p>Guide: {@code docs/pipelines.md}.
 */
package dev.panorm.pipeline;
