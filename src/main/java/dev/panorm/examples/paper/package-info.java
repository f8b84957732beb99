/**
 * An example program, not part of panorm's API (the package is not exported): the claims of Ba, Kiros and
 * Hinton's "Layer Normalization" (2016) measured with panorm on real data. An MLP trained without
 * normalization, with batch normalization (in plain Java here) and with panorm's layer normalization, at a
 * large and a tiny batch size; a GRU with and without layer normalization of every time step's recurrent
 * pre-activations, online and in small batches; and checks that a layer-normalized model computes the same
 * outputs alone, in a batch, and in training mode. {@code scripts/paper.sh} runs it; {@code docs/paper.md}
 * describes the setup and reads the results.
 */
package dev.panorm.examples.paper;
