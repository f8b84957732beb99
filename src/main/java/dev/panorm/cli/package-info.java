/**
 * The {@code panorm} command line ({@code scripts/panorm}, or {@code java -jar panorm.jar}):
 * {@code info}, {@code normalize} and {@code backward} of {@code .npy} files, {@code demo} and
 * {@code bench}; {@code panorm help} lists the options. Not a library API: only
 * {@link Main#main(String[])} is public, as the jar's entry point.
 */
package dev.panorm.cli;
