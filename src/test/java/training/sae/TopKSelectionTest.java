package training.sae;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.factory.Nd4j;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/** TopK inference on loaded dictionaries: exactly k per row, ties to the lower index, ReLU after. */
class TopKSelectionTest {

    @Test
    void keepsTheLargestEvenWhenSmallerValuesTie() {
        float[] kept = TopKSelection.keepTopK(Nd4j.createFromArray(new float[][] {{1, 1, 2}, {-3, 5, -1}}), 2)
                .dup('c').reshape(6).toFloatVector();
        assertArrayEquals(new float[] {1, 0, 2, 0, 5, 0}, kept, "ties to the lower index; negatives kept are ReLU'd to 0");
    }

    @Test
    void matchesAStableSortOnRandomRows() {
        Random random = new Random(3);
        int rows = 20;
        int cols = 50;
        int k = 7;
        float[][] z = new float[rows][cols];
        for (float[] row : z) {
            for (int i = 0; i < cols; i++) {
                row[i] = random.nextInt(9) - 3; // many ties
            }
        }
        float[] kept = TopKSelection.keepTopK(Nd4j.createFromArray(z), k).dup('c').reshape((long) rows * cols).toFloatVector();
        for (int r = 0; r < rows; r++) {
            float[] row = z[r];
            float[] expected = new float[cols];
            IntStream.range(0, cols).boxed().sorted(Comparator.comparingDouble((Integer i) -> -row[i]).thenComparingInt(i -> i))
                    .limit(k).forEach(i -> expected[i] = Math.max(row[i], 0f));
            assertArrayEquals(expected, Arrays.copyOfRange(kept, r * cols, (r + 1) * cols), "row " + r);
        }
    }
}
