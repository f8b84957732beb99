package dev.panorm;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Run in a child JVM by {@link ArenaRaceTest}, since a failure is a crash: on each backend, pass and
 * shape, rounds in which a worker thread calls the pass in a loop on tensors of a shared arena while
 * this thread closes the arena, retrying while a call holds it. Prints one line per backend, pass and
 * shape with how many rounds ended with the worker's {@link IllegalStateException} and in how many the
 * first {@code close()} found the arena held by a call, and exits 1 if any round ended otherwise.
 *
 * <p>Arguments: the most rounds per combination, the milliseconds after which a combination stops early
 * (after at least {@link #MIN_ROUNDS}, so that a busy machine cannot make the run long), then backends
 * (default: all).
 */
public final class ArenaRaceProbe {
    private static final int C = 4096;
    /**
     * Rows of a call that takes about a millisecond, and of one short enough for oneDNN's critical
     * downcalls ({@link OneDnnExecute#SHORT_BELOW}).
     */
    private static final long[] ROWS = {256, 15};

    private static final int MIN_ROUNDS = 3;

    private enum Call {
        FORWARD,
        TRAINING,
        BACKWARD,
        BACKWARD_DATA
    }

    /** What ended the worker's loop (null: nothing thrown), and whether a call held the arena at the first close. */
    private record Round(Throwable ended, boolean held) {}

    private ArenaRaceProbe() {}

    public static void main(String[] args) throws InterruptedException {
        int maxRounds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        long budget = (args.length > 1 ? Long.parseLong(args[1]) : 1000) * 1_000_000;
        Backend[] backends = Backend.values();
        if (args.length > 2) {
            backends = new Backend[args.length - 2];
            for (int i = 2; i < args.length; i++) {
                backends[i - 2] = Backend.valueOf(args[i]);
            }
        }
        SplittableRandom random = new SplittableRandom(42);
        boolean ok = true;
        for (Backend backend : backends) {
            // One thread per call: a busy machine slows OpenMP's barriers, and the mechanism is the same.
            try (LayerNorm norm = LayerNorm.create(LayerNormConfig.of(C), backend, 1)) {
                for (long rows : ROWS) {
                    for (Call call : Call.values()) {
                        ok &= rounds(norm, call, rows, maxRounds, budget, random);
                    }
                }
            }
        }
        System.exit(ok ? 0 : 1);
    }

    /** The rounds of one combination; prints its line and returns whether every round ended as it should. */
    private static boolean rounds(
            LayerNorm norm, Call call, long rows, int maxRounds, long budget, SplittableRandom random)
            throws InterruptedException {
        int rounds = 0;
        int failed = 0;
        int held = 0;
        long start = System.nanoTime();
        while (rounds < maxRounds && (rounds < MIN_ROUNDS || System.nanoTime() - start < budget)) {
            rounds++;
            Round result = race(norm, call, rows, random.nextLong(2_000_000));
            held += result.held() ? 1 : 0;
            if (result.ended() instanceof IllegalStateException) {
                failed++;
            } else {
                System.out.println("unexpected: " + result.ended());
                if (result.ended() != null) {
                    result.ended().printStackTrace(System.out);
                }
            }
        }
        System.out.println(norm.backend() + " " + call + " " + rows + "x" + C + ": " + failed + "/" + rounds
                + " rounds ended with IllegalStateException, " + held + " closes waited for a call ("
                + (System.nanoTime() - start) / 1_000_000 + " ms)");
        return failed == rounds;
    }

    /** One round: the arena is closed {@code delayNanos} after the worker starts calling. */
    private static Round race(LayerNorm norm, Call call, long rows, long delayNanos) throws InterruptedException {
        Arena arena = Arena.ofShared();
        Tensor x = Tensor.allocate(arena, DataType.F32, rows, C);
        Tensor dy = Tensor.allocate(arena, DataType.F32, rows, C);
        Tensor gamma = Tensor.allocate(arena, DataType.F32, C);
        Tensor beta = Tensor.allocate(arena, DataType.F32, C);
        Tensor dGamma = Tensor.allocate(arena, DataType.F32, C);
        Tensor dBeta = Tensor.allocate(arena, DataType.F32, C);
        Tensor mean = Tensor.allocate(arena, DataType.F32, rows);
        Tensor variance = Tensor.allocate(arena, DataType.F32, rows);
        CountDownLatch started = new CountDownLatch(1);
        AtomicReference<Throwable> ended = new AtomicReference<>();
        Thread worker = Thread.ofPlatform().start(() -> {
            started.countDown();
            try {
                while (true) {
                    switch (call) {
                        case FORWARD -> norm.forward(x, x, gamma, beta);
                        case TRAINING -> norm.forwardTraining(x, x, gamma, beta, mean, variance);
                        case BACKWARD -> norm.backward(dy, x, mean, variance, gamma, dy, dGamma, dBeta);
                        case BACKWARD_DATA -> norm.backwardData(dy, x, mean, variance, gamma, dy);
                    }
                }
            } catch (Throwable e) {
                ended.set(e);
            }
        });
        started.await();
        LockSupport.parkNanos(delayNanos);
        boolean held = false;
        while (true) {
            try {
                arena.close();
                break;
            } catch (IllegalStateException acquired) { // a native call holds the arena: try again
                held = true;
                Thread.yield(); // let the worker finish its call
            }
        }
        worker.join();
        return new Round(ended.get(), held);
    }
}
