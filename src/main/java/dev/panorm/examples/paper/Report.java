package dev.panorm.examples.paper;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

/** The study's results as markdown tables and as CSV curves. */
final class Report {
    private Report() {}

    /** The runs of one configuration (network, method, batch), one per seed. */
    record Group(Training.Network network, Training.Method method, int batch, List<Training.Result> runs) {
        String label() {
            return method.label + ", batch " + batch;
        }

        Stats at(int epoch, Function<Training.Result, double[]> curve) {
            return Stats.of(
                    runs.stream().mapToDouble(r -> curve.apply(r)[epoch]).toArray());
        }

        int epochs() {
            return runs.getFirst().trainLoss().length;
        }
    }

    static List<Group> groups(List<Training.Result> results) {
        List<Group> groups = new ArrayList<>();
        for (Training.Result r : results) {
            Training.Spec s = r.spec();
            Group g = groups.stream()
                    .filter(x -> x.network == s.network() && x.method == s.method() && x.batch == s.batch())
                    .findFirst()
                    .orElse(null);
            if (g == null) {
                g = new Group(s.network(), s.method(), s.batch(), new ArrayList<>());
                groups.add(g);
            }
            g.runs.add(r);
        }
        return groups;
    }

    static String percent(Stats s) {
        return String.format(
                Locale.ROOT, "%.2f ± %.2f [%.2f, %.2f]", 100 * s.mean(), 100 * s.sd(), 100 * s.min(), 100 * s.max());
    }

    static String loss(Stats s) {
        return String.format(Locale.ROOT, "%.4f ± %.4f", s.mean(), s.sd());
    }

    /** Epochs averaged in the summary's steadier column: one epoch's test error moves by whole examples. */
    static final int LAST_EPOCHS = 5;

    /**
     * The summary table, mean ± sd [min, max] over seeds: test error after the last epoch, averaged over the
     * last {@link #LAST_EPOCHS} epochs of each run, and the lowest of any epoch; training loss of the last epoch.
     */
    static String summary(List<Group> groups) {
        StringBuilder md = new StringBuilder();
        md.append("| configuration | seeds | test error % after the last epoch | test error %, mean of the last ")
                .append(LAST_EPOCHS)
                .append(" epochs | lowest test error % (any epoch) | training loss, last epoch |\n");
        md.append("|---|---|---|---|---|---|\n");
        for (Group g : groups) {
            int last = g.epochs() - 1;
            int from = Math.max(0, g.epochs() - LAST_EPOCHS);
            double[] lastEpochs = g.runs.stream()
                    .mapToDouble(r -> java.util.Arrays.stream(r.testError(), from, g.epochs())
                            .average()
                            .orElseThrow())
                    .toArray();
            double[] best = g.runs.stream()
                    .mapToDouble(
                            r -> java.util.Arrays.stream(r.testError()).min().orElseThrow())
                    .toArray();
            md.append(String.format(
                    Locale.ROOT,
                    "| %s | %d | %s | %s | %s | %s |%n",
                    g.label(),
                    g.runs.size(),
                    percent(g.at(last, Training.Result::testError)),
                    percent(Stats.of(lastEpochs)),
                    percent(Stats.of(best)),
                    loss(g.at(last, Training.Result::trainLoss))));
        }
        return md.toString();
    }

    /** Mean over seeds per epoch, one column per configuration: test error % and training loss. */
    static String perEpoch(List<Group> groups) {
        StringBuilder md = new StringBuilder("| epoch |");
        StringBuilder rule = new StringBuilder("|---|");
        for (Group g : groups) {
            md.append(' ').append(g.label()).append(" |");
            rule.append("---|");
        }
        md.append('\n').append(rule).append('\n');
        int epochs = groups.getFirst().epochs();
        for (int e = 0; e < epochs; e++) {
            md.append("| ").append(e + 1).append(" |");
            for (Group g : groups) {
                md.append(String.format(
                        Locale.ROOT,
                        " %.2f%% / %.4f |",
                        100 * g.at(e, Training.Result::testError).mean(),
                        g.at(e, Training.Result::trainLoss).mean()));
            }
            md.append('\n');
        }
        return md.toString();
    }

    static String layerNormChecks(List<Consistency.LayerNormCheck> checks) {
        StringBuilder md = new StringBuilder();
        md.append("| trained model | backend | logits | not bit-identical: one at a time vs whole test set "
                + "| largest difference | not bit-identical: training-mode vs test-mode pass "
                + "| largest difference | test error % |\n");
        md.append("|---|---|---|---|---|---|---|---|\n");
        for (Consistency.LayerNormCheck c : checks) {
            md.append(String.format(
                    Locale.ROOT,
                    "| %s | %s | %d | %d | %.3g | %d | %.3g | %.2f |%n",
                    c.spec().label(),
                    c.backend(),
                    c.logits(),
                    c.differingAlone(),
                    c.largestAlone(),
                    c.differingTraining(),
                    c.largestTraining(),
                    100 * c.testError()));
        }
        return md.toString();
    }

    static String batchNormChecks(List<Consistency.BatchNormCheck> checks) {
        StringBuilder md = new StringBuilder();
        md.append(
                "| trained model | test error %: running statistics | whole test set as one batch | batches of 4 test "
                        + "examples | predictions that change (running vs batches of 4) |\n");
        md.append("|---|---|---|---|---|\n");
        for (Consistency.BatchNormCheck c : checks) {
            md.append(String.format(
                    Locale.ROOT,
                    "| %s | %.2f | %.2f | %.2f | %.2f%% |%n",
                    c.spec().label(),
                    100 * c.running(),
                    100 * c.wholeSet(),
                    100 * c.batchesOf4(),
                    100 * c.changed()));
        }
        return md.toString();
    }

    static String profile(List<Profile.Row> rows, int examples) {
        StringBuilder md = new StringBuilder();
        md.append("| GRU | fastest epoch (s) | panorm calls per epoch | median ns per forwardTraining "
                + "| median ns per backward | in panorm per epoch (s) | share of the epoch "
                + "| copying to/from off-heap per epoch (s) |\n");
        md.append("|---|---|---|---|---|---|---|---|\n");
        for (Profile.Row r : rows) {
            CallTimer t = r.timer();
            String name = r.backend() == null ? "no layer norm" : "layer norm, " + r.backend();
            md.append(String.format(
                    Locale.ROOT,
                    "| %s, batch %d | %.2f | %d | %s | %s | %.3f | %.0f%% | %.3f |%n",
                    name,
                    r.batch(),
                    r.seconds(),
                    t.totalCalls() / r.epochs(),
                    perCall(t.median(CallTimer.Kind.FORWARD_TRAINING)),
                    perCall(t.median(CallTimer.Kind.BACKWARD)),
                    r.panormSeconds(),
                    100 * r.panormSeconds() / r.seconds(),
                    r.copySeconds()));
        }
        md.append(String.format(
                Locale.ROOT,
                "%nOne epoch: %d sequences; each variant ran %d epochs, interleaved with the "
                        + "others; calls per epoch times their median duration estimate the time in panorm.%n",
                examples,
                rows.getFirst().epochs()));
        return md.toString();
    }

    private static String perCall(double nanos) {
        return Double.isNaN(nanos) ? "-" : String.format(Locale.ROOT, "%.0f", nanos);
    }

    static String coldStarts(List<Profile.Cold> rows, int repetitions) {
        int epochs = rows.getFirst().seconds().length;
        StringBuilder md = new StringBuilder("| GRU, fresh JVM |");
        StringBuilder rule = new StringBuilder("|---|");
        for (int e = 1; e <= epochs; e++) {
            md.append(" epoch ").append(e).append(": s (in panorm) |");
            rule.append("---|");
        }
        md.append(" all ")
                .append(epochs)
                .append(" epochs: s (in panorm) | share in panorm |\n")
                .append(rule)
                .append("---|---|\n");
        for (Profile.Cold r : rows) {
            md.append("| ")
                    .append(r.backend() == null ? "no layer norm" : "layer norm, " + r.backend())
                    .append(", batch ")
                    .append(r.batch())
                    .append(" |");
            for (int e = 0; e < epochs; e++) {
                md.append(String.format(Locale.ROOT, " %.2f (%.3f) |", r.seconds()[e], r.panormSeconds()[e]));
            }
            double total = r.total(r.seconds());
            double panorm = r.total(r.panormSeconds());
            md.append(String.format(Locale.ROOT, " %.2f (%.3f) | %.0f%% |%n", total, panorm, 100 * panorm / total));
        }
        md.append(String.format(
                Locale.ROOT,
                "%nEach row is a new JVM that trains from scratch (%d panorm calls per epoch "
                        + "with layer norm), so JIT compilation is included; the fastest of %d such JVMs per row, run "
                        + "interleaved; times in panorm are sums of the calls' durations.%n",
                rows.get(1).callsPerEpoch(),
                repetitions));
        return md.toString();
    }

    /** Every run's curves: one line per run and epoch. */
    static String csv(List<Training.Result> results) {
        StringBuilder csv = new StringBuilder("network,method,batch,seed,epoch,train_loss,test_error\n");
        for (Training.Result r : results) {
            Training.Spec s = r.spec();
            for (int e = 0; e < r.trainLoss().length; e++) {
                csv.append(String.format(
                        Locale.ROOT,
                        "%s,%s,%d,%d,%d,%.6f,%.6f%n",
                        s.network(),
                        s.method(),
                        s.batch(),
                        s.seed(),
                        e + 1,
                        r.trainLoss()[e],
                        r.testError()[e]));
            }
        }
        return csv.toString();
    }
}
