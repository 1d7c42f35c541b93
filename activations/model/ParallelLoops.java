package activations.model;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.ForkJoinPool;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Data-parallel loops for the forward pass, bounded by the calling thread's core budget: a Spark
 * task owns {@code spark.task.cpus} cores, and two tasks each spreading over every core would slow
 * each other down. A thread without a budget uses the common pool.
 */
public final class ParallelLoops {

    private static final ThreadLocal<ForkJoinPool> POOL = new ThreadLocal<>();
    private static final ThreadLocal<Integer> THREADS = new ThreadLocal<>();

    private ParallelLoops() {
    }

    /** Limits loops started by this thread to {@code threads} threads (1: plain sequential loops). */
    public static void limitCurrentThread(int threads) {
        int n = Math.max(1, threads);
        Integer current = THREADS.get();
        if (current != null && current == n) {
            return;
        }
        ForkJoinPool old = POOL.get();
        if (old != null) {
            old.shutdown();
        }
        THREADS.set(n);
        POOL.set(n == 1 ? null : new ForkJoinPool(n));
    }

    /** Runs {@code body(i)} for i in [0, n), in parallel within the thread's budget. */
    static void forEach(int n, IntConsumer body) {
        Integer threads = THREADS.get();
        if (threads == null) {
            IntStream.range(0, n).parallel().forEach(body);
        } else if (threads == 1 || n == 1) {
            for (int i = 0; i < n; i++) {
                body.accept(i);
            }
        } else {
            try {
                POOL.get().submit(() -> IntStream.range(0, n).parallel().forEach(body)).get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted during a forward pass", e);
            } catch (ExecutionException e) {
                Throwable cause = e.getCause();
                if (cause instanceof RuntimeException r) {
                    throw r;
                }
                throw new IllegalStateException(cause);
            }
        }
    }
}
