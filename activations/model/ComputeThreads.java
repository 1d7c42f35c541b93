package activations.model;

import org.nd4j.linalg.factory.Nd4j;

/**
 * Caps every thread pool a task computes with: ND4J's, its OpenMP pool, OpenBLAS's, and the
 * forward pass's own loops. A Spark task owns {@code spark.task.cpus} cores, and pools spread over
 * more cores than that only contend (on a shared 2-core machine a tiny-shape training step took
 * 146 ms with default pools against 8 ms single-threaded).
 */
public final class ComputeThreads {

    private ComputeThreads() {
    }

    /** Limits native pools (process-wide) and this thread's loop parallelism to {@code threads}. */
    public static void limit(int threads) {
        int n = Math.max(1, threads);
        Nd4j.getEnvironment().setMaxThreads(n);
        Nd4j.getEnvironment().setMaxMasterThreads(n);
        org.nd4j.nativeblas.NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(n);
        try {
            org.bytedeco.openblas.global.openblas_nolapack.blas_set_num_threads(n);
        } catch (NoClassDefFoundError | UnsatisfiedLinkError e) {
            // Not the CPU backend (CUDA): BLAS threads are not ours to set there.
        }
        ParallelLoops.limitCurrentThread(n);
    }

    /**
     * Sets every pool to all of this JVM's cores, for work that owns the whole process (training in
     * the driver or the CLI). It must be set, not assumed: a Spark stage run earlier in the same
     * JVM in local mode leaves the process-wide pools at its tasks' width, and reduction results
     * depend on the thread count in their last bits. A pipeline resumed after a kill skips that
     * stage, so without this its training differed from the uninterrupted run's (and ran on one
     * BLAS thread in the uninterrupted one).
     */
    public static void useAllCores() {
        limit(Runtime.getRuntime().availableProcessors());
    }

    /** The current ND4J thread limit, to restore after {@link #limit}. */
    public static int current() {
        return Nd4j.getEnvironment().maxThreads();
    }
}
