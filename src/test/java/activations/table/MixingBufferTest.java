package activations.table;

import org.junit.jupiter.api.Test;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MixingBufferTest {

    private static final int ROWS = 5000;
    private static final int CAPACITY = 1000;

    /**
     * Two hooks whose rows carry their input index: hook A row i is (i, -i, 0.5), hook B row i is
     * (2i, 7): the output identifies each row's origin and whether its hooks stayed together.
     */
    private static ActivationSource indexedSource() {
        float[] a = new float[ROWS * 3];
        float[] b = new float[ROWS * 2];
        for (int i = 0; i < ROWS; i++) {
            a[3 * i] = i;
            a[3 * i + 1] = -i;
            a[3 * i + 2] = 0.5f;
            b[2 * i] = 2 * i;
            b[2 * i + 1] = 7;
        }
        return new InMemoryActivationSource(List.of("a", "b"), new float[][] {a, b}, new int[] {3, 2}, 1);
    }

    /** Input indices in output order, checking each row's hooks belong together; reads in uneven chunks. */
    private static int[] drain(ActivationSource source, int skipFirst, int... chunks) {
        int[] order = new int[ROWS - skipFirst];
        FloatBuffer[] dst = {FloatBuffer.allocate(512 * 3), FloatBuffer.allocate(512 * 2)};
        int count = 0;
        int c = 0;
        while (true) {
            dst[0].clear();
            dst[1].clear();
            int n = source.read(dst, chunks[c++ % chunks.length]);
            if (n == 0) {
                break;
            }
            for (int r = 0; r < n; r++) {
                int index = (int) dst[0].get(3 * r);
                assertEquals(-index, dst[0].get(3 * r + 1));
                assertEquals(0.5f, dst[0].get(3 * r + 2));
                assertEquals(2f * index, dst[1].get(2 * r), "hook rows of one token stay together");
                assertEquals(7f, dst[1].get(2 * r + 1));
                order[count++] = index;
            }
        }
        assertEquals(ROWS - skipFirst, count);
        return order;
    }

    @Test
    void outputIsAPermutationOfTheInput() {
        try (MixingBuffer buffer = new MixingBuffer(indexedSource(), CAPACITY, 42)) {
            int[] order = drain(buffer, 0, 100, 7, 333);
            int[] sorted = order.clone();
            Arrays.sort(sorted);
            for (int i = 0; i < ROWS; i++) {
                assertEquals(i, sorted[i], "every input row comes out exactly once");
            }
            assertEquals(ROWS, buffer.position());
        }
    }

    @Test
    void orderIsDeterministicPerSeedIndependentOfReadSizesAndDiffersBetweenSeeds() {
        int[] first = drain(new MixingBuffer(indexedSource(), CAPACITY, 42), 0, 100);
        int[] again = drain(new MixingBuffer(indexedSource(), CAPACITY, 42), 0, 1, 17, 512);
        int[] otherSeed = drain(new MixingBuffer(indexedSource(), CAPACITY, 43), 0, 100);
        assertArrayEquals(first, again);
        assertFalse(Arrays.equals(first, otherSeed));
    }

    @Test
    void rowsActuallyMoveFarFromTheirInputPosition() {
        int[] order = drain(new MixingBuffer(indexedSource(), CAPACITY, 7), 0, 256);
        int far = 0;
        for (int out = 0; out < ROWS; out++) {
            if (Math.abs(out - order[out]) > CAPACITY / 10) {
                far++;
            }
        }
        // a row waits ~capacity draws on average; only ~10% should leave within capacity/10
        assertTrue(far > 0.8 * ROWS, far + " of " + ROWS + " rows moved more than " + CAPACITY / 10);
        // and neighbours in the input are no longer neighbours in the output
        int adjacent = 0;
        for (int out = 1; out < ROWS; out++) {
            if (Math.abs(order[out] - order[out - 1]) == 1) {
                adjacent++;
            }
        }
        assertTrue(adjacent < ROWS / 50, adjacent + " input neighbours stayed adjacent");
    }

    @Test
    void skipThenReadEqualsReadThenRead() {
        int[] all = drain(new MixingBuffer(indexedSource(), CAPACITY, 42), 0, 64);
        for (int skip : new int[] {0, 1, 999, 1000, 3210, 4999}) {
            MixingBuffer buffer = new MixingBuffer(indexedSource(), CAPACITY, 42);
            buffer.skip(skip);
            assertEquals(skip, buffer.position());
            int[] rest = drain(buffer, skip, 77);
            assertArrayEquals(Arrays.copyOfRange(all, skip, ROWS), rest, "after skipping " + skip);
        }
        MixingBuffer buffer = new MixingBuffer(indexedSource(), CAPACITY, 42);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> buffer.skip(ROWS + 1));
        assertTrue(e.getMessage().contains("end after " + ROWS), e.getMessage());
    }

    @Test
    void sourceSmallerThanTheBufferStillDrainsCompletely() {
        int[] order = drain(new MixingBuffer(indexedSource(), 2 * ROWS, 3), 0, 500);
        int[] sorted = order.clone();
        Arrays.sort(sorted);
        for (int i = 0; i < ROWS; i++) {
            assertEquals(i, sorted[i]);
        }
    }
}
