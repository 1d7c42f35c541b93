package training.clt;

import org.nd4j.linalg.factory.Nd4j;

/**
 * Tests on tiny shapes run thousands of small ops whose OpenMP fan-out only adds contention on a
 * shared 2-core machine (measured 146 ms vs 8 ms per step); they run ND4J single-threaded and
 * restore the setting afterwards.
 */
final class SmallShapes {

    private static int savedThreads;
    private static int savedMasterThreads;

    private SmallShapes() {
    }

    static void singleThreaded() {
        savedThreads = Nd4j.getEnvironment().maxThreads();
        savedMasterThreads = Nd4j.getEnvironment().maxMasterThreads();
        Nd4j.getEnvironment().setMaxThreads(1);
        Nd4j.getEnvironment().setMaxMasterThreads(1);
        org.nd4j.nativeblas.NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(1);
        org.bytedeco.openblas.global.openblas_nolapack.blas_set_num_threads(1);
    }

    static void restore() {
        Nd4j.getEnvironment().setMaxThreads(savedThreads);
        Nd4j.getEnvironment().setMaxMasterThreads(savedMasterThreads);
        org.nd4j.nativeblas.NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(savedThreads);
        org.bytedeco.openblas.global.openblas_nolapack.blas_set_num_threads(savedThreads);
    }
}
