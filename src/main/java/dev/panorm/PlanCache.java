package dev.panorm;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

/**
 * The oneDNN kernel's plans, one per call signature (pass, thread count, and the data type, shape
 * and strides of every tensor), and what each thread remembers of them.
 *
 * <p>Each thread keeps, for itself alone, what it needs to repeat its last {@link #RECENT} signatures:
 * the execution context (stream, memory objects, bound addresses) of each plan it ran, and the
 * rejection of each signature oneDNN cannot run. So a repeated call, accepted or rejected, takes no
 * lock, scans no shared list and writes nothing another thread reads. Only a thread's first call on a
 * signature takes the lock, to find or build the plan (or the rejection) and a context.
 *
 * <p>Beyond {@link #MAX_PLANS} plans, one is dropped to make room: a second-chance ("clock") sweep
 * over the plans clears each one's {@link OneDnnPlan#referenced} bit and drops the first whose bit is
 * already clear, that is one no call has used since the sweep last passed it. A call sets the bit only
 * when it is clear, so calls in a steady state write nothing shared; a least-recently-used stamp would
 * be a write per call to a line that every thread calling the plan reads. A dropped plan is retired:
 * threads still holding its contexts see the flag and stop using them, and its native memory is freed
 * once every call of the {@code LayerNorm} that entered before has ended, by a background thread rather than by
 * the call that evicted it (docs/benchmarks.md, Startup: what freeing costs that call), unless that thread has
 * fallen behind ({@link #quiescent}).
 */
final class PlanCache {
    /** Plans kept; each holds a little JIT code and a few descriptors. */
    static final int MAX_PLANS = 64;
    /** Signatures a thread remembers: enough for a model alternating a few shapes (prefill, decode, ...). */
    private static final int RECENT = 4;

    /** Builds the plan for a new signature, or says why oneDNN cannot run it. */
    @FunctionalInterface
    interface Builder {
        OneDnnPlan build(CallSignature signature, Call call) throws OneDnnPlan.Unsupported;
    }

    /** The daemon thread that frees retired plans, shared by every oneDNN {@code LayerNorm}; started on first use. */
    private static final class Reaper {
        static final ExecutorService THREAD = BackgroundThreads.lowestPriority("panorm-plan-reaper");
    }

    /** The daemon thread that builds plans for {@link #tryCheckOut}, shared by every cache; started on first use. */
    private static final class Background {
        static final ExecutorService THREAD = BackgroundThreads.lowestPriority("panorm-plan-builder");
    }

    /** A signature oneDNN cannot run, and why. */
    private record Rejected(CallSignature signature, String reason) {}

    /** What a thread remembers of a signature: the context it runs it with, or null if oneDNN rejected it. */
    record Recent(CallSignature signature, OneDnnPlan.Context context) {}

    private final CallCounter calls;
    private final Builder builder;
    /** Per thread, its recent signatures, most recent first. */
    private final ThreadLocal<Recent[]> recent = ThreadLocal.withInitial(() -> new Recent[RECENT]);

    private final Object lock = new Object();
    private final List<OneDnnPlan> plans = new ArrayList<>(); // guarded by lock
    private final List<Rejected> rejected = new ArrayList<>(); // guarded by lock
    private final List<OneDnnPlan> retired = new ArrayList<>(); // guarded by lock
    /** Retired plans waiting for the calls of epoch {@link #waitingFor} to end, or null; guarded by lock. */
    private List<OneDnnPlan> waiting;
    /**
     * The epoch {@link #waiting} waits for, or -1; written under the lock, read without it by {@link #quiescent}, so
     * that calls exiting while that epoch's calls run take no lock.
     */
    private volatile long waitingFor = -1;
    /** Whether {@link #retired} or {@link #waiting} holds plans. */
    private volatile boolean hasRetired;
    /** Retired plans handed to the {@link Reaper} and not freed yet; guarded by lock. */
    private int freeing;
    /** Batches handed to the {@link Reaper} that it has not begun to free; guarded by lock. */
    private final List<Batch> handed = new ArrayList<>();
    /** Where the eviction sweep stands in {@link #plans}; guarded by lock. */
    private int hand;
    /** The signature the background thread is building a plan for, or null. */
    private volatile CallSignature building;
    /** The last signature whose background build threw, or null. */
    private volatile CallSignature failed;
    /** Set by {@link #close}: a background build finishing later frees its plan; guarded by lock. */
    private boolean closed;

    /**
     * @param calls the owning {@code LayerNorm}'s calls in flight
     * @param builder makes the plan for a signature met for the first time
     */
    PlanCache(CallCounter calls, Builder builder) {
        this.calls = calls;
        this.builder = builder;
    }

    /**
     * What the calling thread remembers of this signature ({@code key} from {@link CallSignature#key}),
     * or null if it has not run it lately ({@link #checkOut} then). Takes no lock and writes nothing
     * shared in the steady state.
     */
    Recent recent(
            long key,
            Pass pass,
            int threads,
            Tensor src,
            Tensor dst,
            Tensor scale,
            Tensor shift,
            Tensor diffDst,
            Tensor diffSrc,
            Tensor diffScale,
            Tensor diffShift) {
        for (Recent entry : recent.get()) {
            if (entry != null
                    && entry.signature()
                            .matches(
                                    key, pass, threads, src, dst, scale, shift, diffDst, diffSrc, diffScale,
                                    diffShift)) {
                OneDnnPlan.Context context = entry.context();
                if (context == null) {
                    return entry; // rejected: rejections are never retired
                }
                OneDnnPlan plan = context.plan;
                if (!plan.retired) {
                    if (!plan.referenced) { // written only when clear: see the class comment
                        plan.referenced = true;
                    }
                    return entry;
                }
            }
        }
        return null;
    }

    /**
     * The calling thread's first call on this signature lately: finds or builds the plan (or the
     * rejection), lends the thread a context of it, and remembers both for the thread, first among its
     * recent signatures; the context this displaces goes back to its plan.
     */
    Recent checkOut(Call call, int threads) {
        Recent[] mine = recent.get();
        synchronized (lock) {
            CallSignature signature = new CallSignature(call, threads);
            return remember(mine, signature, find(signature, call));
        }
    }

    /**
     * As {@link #checkOut}, but never builds a plan on the calling thread: when the signature is new, its
     * plan (or rejection) is built on a background thread, with a context ready for the first call, and
     * this returns null, as it does while that build runs (one at a time per cache). A signature whose
     * background build threw is checked out as {@link #checkOut} does, so the caller sees the exception.
     */
    Recent tryCheckOut(Call call, int threads) {
        if (building != null) { // without the lock: a new build would wait for the running one
            return null;
        }
        Recent[] mine = recent.get();
        synchronized (lock) {
            CallSignature signature = new CallSignature(call, threads);
            OneDnnPlan plan = cached(signature, call);
            if (plan == null
                    && rejected(signature, call) == null
                    && (failed == null || !matches(failed, signature, call))) {
                if (building != null) { // another thread started a build since the check above
                    return null;
                }
                building = signature;
                Call layout = call.layout(); // not the caller's tensors: an automatic arena frees them when unreachable
                Background.THREAD.execute(() -> buildInBackground(signature, layout));
                return null;
            }
            return remember(mine, signature, plan == null ? find(signature, call) : plan);
        }
    }

    /** Builds a plan off the callers' threads and admits it with one idle context, unless the cache closed. */
    private void buildInBackground(CallSignature signature, Call call) {
        OneDnnPlan plan = null;
        try {
            synchronized (lock) {
                if (closed) { // builds queue behind other caches' on one thread: none for a closed one
                    return;
                }
            }
            plan = builder.build(signature, call);
            plan.release(plan.lend()); // the stream and memory objects, made here rather than by the first call
        } catch (OneDnnPlan.Unsupported e) {
            synchronized (lock) {
                reject(signature, e);
            }
        } catch (RuntimeException | Error e) {
            failed = signature; // the caller's next call builds it itself and gets the exception
        } finally {
            synchronized (lock) {
                if (plan != null) {
                    if (closed || cached(signature, call) != null) {
                        plan.free();
                    } else {
                        admit(plan);
                    }
                }
                building = null;
            }
        }
    }

    /** Lends the thread a context of {@code plan} (null: rejected) and remembers both. Holds the lock. */
    private Recent remember(Recent[] mine, CallSignature signature, OneDnnPlan plan) {
        if (plan != null && plan.contexts() > 0) {
            plan.referenced = true; // it has lent a context before: this is not its first call
        }
        Recent entry = new Recent(plan == null ? signature : plan.signature, plan == null ? null : plan.lend());
        Recent displaced = mine[RECENT - 1];
        if (displaced != null && displaced.context() != null && !displaced.context().plan.retired) {
            displaced.context().plan.release(displaced.context());
        }
        System.arraycopy(mine, 0, mine, 1, RECENT - 1);
        mine[0] = entry;
        return entry;
    }

    /**
     * The plan for {@code call}'s signature, built if new; null if oneDNN cannot run it, with
     * {@link #rejection} saying why. Takes the lock.
     */
    OneDnnPlan plan(Call call, int threads) {
        synchronized (lock) {
            return find(new CallSignature(call, threads), call);
        }
    }

    /** Why oneDNN cannot run {@code call}'s signature, if it was tried; else null. */
    String rejection(Call call, int threads) {
        CallSignature signature = new CallSignature(call, threads);
        synchronized (lock) {
            Rejected entry = rejected(signature, call);
            return entry == null ? null : entry.reason();
        }
    }

    /** The plan for this signature, built if new; null if oneDNN cannot run it. Holds the lock. */
    private OneDnnPlan find(CallSignature signature, Call call) {
        OneDnnPlan cached = cached(signature, call);
        if (cached != null || rejected(signature, call) != null) {
            return cached;
        }
        OneDnnPlan plan;
        try {
            plan = builder.build(signature, call);
        } catch (OneDnnPlan.Unsupported e) {
            reject(signature, e);
            return null;
        }
        admit(plan);
        return plan;
    }

    /** The cached plan for this signature, or null. Holds the lock. */
    private OneDnnPlan cached(CallSignature signature, Call call) {
        for (OneDnnPlan plan : plans) {
            if (matches(plan.signature, signature, call)) {
                return plan;
            }
        }
        return null;
    }

    /** Remembers why oneDNN cannot run this signature. Holds the lock. */
    private void reject(CallSignature signature, OneDnnPlan.Unsupported e) {
        if (rejected.size() >= MAX_PLANS) {
            rejected.removeFirst();
        }
        rejected.add(new Rejected(signature, e.getMessage()));
    }

    private Rejected rejected(CallSignature signature, Call call) {
        for (Rejected entry : rejected) {
            if (matches(entry.signature(), signature, call)) {
                return entry;
            }
        }
        return null;
    }

    private static boolean matches(CallSignature known, CallSignature signature, Call call) {
        return known.matches(
                signature.key,
                call.pass(),
                signature.threads,
                call.src(),
                call.dst(),
                call.scale(),
                call.shift(),
                call.diffDst(),
                call.diffSrc(),
                call.diffScale(),
                call.diffShift());
    }

    /**
     * Adds a new plan, in place of one the sweep finds unused since it last passed when all places are
     * taken. Calls may set bits again behind the sweep, so after two rounds it takes the plan at hand.
     * Holds the lock.
     */
    private void admit(OneDnnPlan plan) {
        if (plans.size() < MAX_PLANS) {
            plans.add(plan);
            return;
        }
        for (int looked = 0; ; looked++) {
            hand %= plans.size();
            OneDnnPlan candidate = plans.get(hand);
            if (!candidate.referenced || looked >= 2 * plans.size()) {
                candidate.retired = true; // threads holding its contexts must not use them
                retired.add(candidate);
                hasRetired = true;
                plans.set(hand++, plan);
                return;
            }
            candidate.referenced = false;
            hand++;
        }
    }

    /**
     * Frees retired plans once no call can be using them: on retiring some, it begins a new epoch of the calls
     * ({@link CallCounter#advance}); a call that enters later sees them retired (the flag is written before the epoch
     * begins), so once the calls of the epoch left have ended ({@link CallCounter#ended}) none can be using them. They
     * go to the {@link Reaper}, unless it still holds {@link #MAX_PLANS} plans of this cache: then the calling thread
     * frees them itself, since a caller meeting new signatures retires plans faster than a thread of the lowest
     * priority frees them, and their native memory grew without bound (hundreds of MiB a second).
     */
    void quiescent() {
        if (!hasRetired) {
            return;
        }
        // Nothing can be freed, and no epoch begin, before the epoch waited for ends: a busy cache's usual case.
        long pending = waitingFor;
        if (pending >= 0 && !calls.ended(pending)) {
            return;
        }
        List<OneDnnPlan> doomed = null; // allocated only when there are plans to free: quiescent() runs every call
        boolean here;
        Batch batch;
        synchronized (lock) {
            if (waiting != null && calls.ended(waitingFor)) {
                doomed = waiting;
                waiting = null;
                waitingFor = -1;
            }
            if (waiting == null && !retired.isEmpty()) {
                long left = calls.advance();
                if (left >= 0) {
                    List<OneDnnPlan> dropped = List.copyOf(retired);
                    retired.clear();
                    if (!calls.ended(left)) {
                        waiting = dropped;
                        waitingFor = left;
                    } else if (doomed == null) { // no other call in flight: the usual case with one caller
                        doomed = dropped;
                    } else {
                        doomed =
                                Stream.concat(doomed.stream(), dropped.stream()).toList();
                    }
                }
            }
            hasRetired = waiting != null || !retired.isEmpty();
            if (doomed == null) {
                return;
            }
            here = freeing >= MAX_PLANS;
            freeing += doomed.size();
            batch = new Batch(doomed);
            if (!here) {
                handed.add(batch);
            }
        }
        if (here) {
            free(batch);
        } else {
            Reaper.THREAD.execute(() -> {
                if (batch.claim()) {
                    free(batch);
                }
            });
        }
    }

    /** Plans that one thread frees: the {@link Reaper}, a caller, or {@link #close}, whichever claims it first. */
    private record Batch(List<OneDnnPlan> plans, AtomicBoolean claimed) {
        Batch(List<OneDnnPlan> plans) {
            this(plans, new AtomicBoolean());
        }

        boolean claim() {
            return claimed.compareAndSet(false, true);
        }
    }

    private void free(Batch batch) {
        batch.plans().forEach(OneDnnPlan::free);
        synchronized (lock) {
            handed.remove(batch);
            freeing -= batch.plans().size();
            lock.notifyAll();
        }
    }

    /** Plans whose native objects are allocated: cached, retired or being freed (for leak tests). */
    int allocatedPlans() {
        synchronized (lock) {
            return plans.size() + retired.size() + (waiting == null ? 0 : waiting.size()) + freeing;
        }
    }

    /** Whether a plan is being built in the background, when {@link #tryCheckOut} returns null at once. */
    boolean buildingInBackground() {
        return building != null;
    }

    /**
     * Holds the thread that builds plans in the background until the returned action runs (for tests): builds queued
     * meanwhile wait.
     */
    static Runnable holdBuilder() {
        return hold(Background.THREAD);
    }

    /** Holds the thread that frees retired plans until the returned action runs (for tests). */
    static Runnable holdReaper() {
        return hold(Reaper.THREAD);
    }

    private static Runnable hold(ExecutorService thread) {
        CountDownLatch release = new CountDownLatch(1);
        thread.execute(() -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        return release::countDown;
    }

    /** Waits until no plan is being built in the background (for tests). */
    void awaitBackgroundBuild() throws InterruptedException {
        while (building != null) {
            Thread.sleep(1);
        }
    }

    /** Plans in the cache (for tests). */
    int cachedPlans() {
        synchronized (lock) {
            return plans.size();
        }
    }

    /** Contexts (streams and memory objects) the cached plans have made (for leak tests). */
    int allocatedContexts() {
        synchronized (lock) {
            return plans.stream().mapToInt(OneDnnPlan::contexts).sum();
        }
    }

    /**
     * Frees every plan, those handed to the reaper that it has not begun included, and returns once it has freed those it
     * began. Called when no call is in flight.
     */
    void close() {
        synchronized (lock) {
            closed = true;
            for (OneDnnPlan plan : plans) {
                plan.retired = true; // threads holding its contexts must not use them
                plan.free();
            }
            retired.forEach(OneDnnPlan::free);
            if (waiting != null) {
                waiting.forEach(OneDnnPlan::free);
                waiting = null;
                waitingFor = -1;
            }
            // Free here what the reaper has not begun: it may be busy with other caches' plans for seconds.
            for (Batch batch : List.copyOf(handed)) { // free() removes each from handed
                if (batch.claim()) {
                    free(batch);
                }
            }
            plans.clear();
            retired.clear();
            rejected.clear();
            boolean interrupted = false;
            while (freeing > 0) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
