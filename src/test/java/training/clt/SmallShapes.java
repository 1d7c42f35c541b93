package training.clt;

import activations.model.ComputeThreads;

/**
 * Tests on tiny shapes run thousands of small ops whose OpenMP fan-out only adds contention on a
 * shared 2-core machine (measured 146 ms vs 8 ms per step); they run ND4J single-threaded and
 * restore the setting afterwards.
 */
public final class SmallShapes {

    private static int savedThreads;

    private SmallShapes() {
    }

    public static void singleThreaded() {
        savedThreads = ComputeThreads.current();
        ComputeThreads.limit(1);
    }

    public static void restore() {
        ComputeThreads.limit(savedThreads);
    }
}
