package jobs.bench;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The baseline every ratio divides by: fp32 {@code Nd4j.gemm} into a preallocated output at the
 * SAE shapes (the encoder, decoder and transposed weight-gradient products); the best is taken as
 * the machine's practical peak.
 */
final class GemmBenchmark {

    private GemmBenchmark() {
    }

    static Figure run(int batch, int dIn, int dSae, double seconds) {
        Map<String, Object> details = new LinkedHashMap<>();
        double encoder = gflops(batch, dIn, dSae, false, false, seconds);
        double decoder = gflops(batch, dSae, dIn, false, false, seconds);
        double gradient = gflops(dIn, batch, dSae, true, false, seconds);
        details.put("shape", batch + "x" + dIn + " by " + dIn + "x" + dSae);
        details.put("encoder_gflops", encoder);
        details.put("decoder_gflops", decoder);
        details.put("weight_gradient_gflops", gradient);
        return Figure.measured("gemm_gflops", Math.max(encoder, Math.max(decoder, gradient)), "GFLOP/s", details);
    }

    /** GFLOP/s of C[m,n] = op(A) op(B) with inner size k, repeated for about {@code seconds}. */
    static double gflops(int m, int k, int n, boolean transposeA, boolean transposeB, double seconds) {
        INDArray a = transposeA ? Nd4j.rand(DataType.FLOAT, k, m) : Nd4j.rand(DataType.FLOAT, m, k);
        INDArray b = transposeB ? Nd4j.rand(DataType.FLOAT, n, k) : Nd4j.rand(DataType.FLOAT, k, n);
        INDArray c = Nd4j.create(DataType.FLOAT, m, n);
        Nd4j.gemm(a, b, c, transposeA, transposeB, 1.0, 0.0); // warm-up
        long start = System.nanoTime();
        int reps = 0;
        do {
            Nd4j.gemm(a, b, c, transposeA, transposeB, 1.0, 0.0);
            reps++;
        } while (System.nanoTime() - start < seconds * 1e9);
        double elapsed = (System.nanoTime() - start) / 1e9;
        return 2.0 * m * n * k * reps / elapsed / 1e9;
    }
}
