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

    /** The current ND4J thread limit, to restore after {@link #limit}. */
    public static int current() {
        return Nd4j.getEnvironment().maxThreads();
    }
}
