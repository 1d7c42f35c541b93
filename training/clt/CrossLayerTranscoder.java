package training.clt;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.reduce.floating.Norm2;
import org.nd4j.linalg.api.ops.impl.scalar.Step;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.SubOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;
import training.sae.ColumnSums;
import training.sae.JumpReluMath;
import training.sae.SparseAutoencoder;
import training.sae.SparseRows;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * A cross-layer transcoder over L layers of width d with F JumpReLU features per layer
 * (REFERENCE section 3). Layer l's encoder reads that layer's MLP input x_l:
 * {@code z_l = x_l W_enc[l] + b_enc[l]}, {@code a_l = z_l * H(z_l - theta_l)}; feature (l, i)
 * writes to every layer l' >= l through its own decoder, and the prediction of layer l''s MLP
 * output is {@code y_hat_l' = sum_{l <= l'} a_l W_dec[l -> l'] + b_dec[l']}.
 *
 * <p>Loss per batch of B tokens: {@code sum_l' ||y_hat_l' - y_l'||^2 / B} (squared error summed
 * over width and layers, averaged over tokens) + {@code lambda/B sum_b sum_l sum_i tanh(c a_bli n_li)}
 * + {@code lambda_p/B sum_b sum_{dead (l,i)} ReLU(theta_li - z_bli) n_li}, where {@code n_li} is the
 * norm of feature (l, i)'s decoders concatenated over its target layers. JumpReLU uses the
 * straight-through rectangle-kernel pseudo-derivatives of {@link JumpReluMath} (shared with the
 * JumpReLU SAE); the training pass uses its fused single-pass forms, since op-by-op elementwise
 * passes over [batch, F] are memory-bound and cost more than the gemms at CLT sizes.
 *
 * <p>Parameters live in ONE flat row vector (layout: for each layer l: W_enc[l] [d, F], b_enc[l]
 * [F], log_theta[l] [F]; then b_dec[l'] [d] for each l'; then W_dec[l -> l'] [F, d] for l = 0..L-1,
 * l' = l..L-1), the named tensors are views of it, and {@link #gradients()} has the same layout,
 * so one {@link training.optim.AdamOptimizer} call updates everything and a data-parallel driver
 * can average the flat arrays. Thresholds are kept in fp32 (as log theta) with the other weights.
 *
 * <p>Memory: the decoders hold {@code F d L(L+1)/2} parameters against {@code L d F} for the encoders,
 * so at real scale the decoder dominates; with gradients and Adam's two moments every parameter
 * costs 16 bytes in fp32. Per-batch buffers ({@code 2 L B F + 3 B F + 4 L B d} floats) are allocated
 * once per batch size. {@link #estimateMemory} and {@link #checkFits} size a config before allocating.
 * Not thread-safe.
 */
public final class CrossLayerTranscoder {

    /** One batch's loss, split into its (already weighted) parts, with per-layer MSE and L0. */
    public record LossParts(double total, double mse, double sparsity, double preActivation, double[] mseByLayer,
                            double[] l0ByLayer) {
        /** Mean active features per token over all layers (sum of per-layer L0). */
        public double l0() {
            return Arrays.stream(l0ByLayer).sum();
        }
    }

    /** Bytes a config needs, split as parameters (one copy) and per-batch buffers. */
    public record MemoryEstimate(long parameters, long parameterBytes, long batchBufferBytes) {
        /** Weights + gradients + Adam m and v (4 copies of the parameters) + batch buffers. */
        public long totalBytes() {
            return 4 * parameterBytes + batchBufferBytes;
        }
    }

    private final CltConfig config;
    private final DataType dtype;
    private final int layers;
    private final int d;
    private final int features;

    private final INDArray params;
    private final INDArray grads;
    private final INDArray[] wEnc;
    private final INDArray[] bEnc;
    private final INDArray[] logThreshold;
    private final INDArray[] bDec;
    private final INDArray[][] wDec; // [source][target - source]
    private final INDArray[] gWEnc;
    private final INDArray[] gBEnc;
    private final INDArray[] gLogThreshold;
    private final INDArray[] gBDec;
    private final INDArray[][] gWDec;

    private final INDArray[] threshold;
    private final INDArray[] decoderNorms;
    private final INDArray[] normGrad;
    private final INDArray[] deadMask;
    private final int[] deadCount;
    private final INDArray fireCounts; // [L * F]
    private final INDArray[] fireCountViews;
    private final INDArray rowA;
    private final INDArray rowB;
    private final INDArray decoderScratch;
    private double sparsityCoefficient;

    private int batch = -1;
    private INDArray[] z;
    private INDArray[] f;
    private INDArray[] yHat;
    private INDArray[] err;
    private INDArray mask;
    private INDArray df;
    private INDArray work;
    private INDArray[] xInput;

    private SparseAutoencoder.Decoding decoding = SparseAutoencoder.Decoding.AUTO;
    private boolean lastSparse;
    /** Sparse path, per layer: active features, the threshold window's inactive entries, dead-feature exceptions. */
    private SparseRows[] entries;
    /** Per layer [2F]: over the batch, per dead feature, sum of (theta - z) where theta > z, then the count of such rows. */
    private double[][] deadSums;
    private float[][][] hostDecoders;
    private float[][] hostDecoderGrad;
    private float[][][] hostErr;
    private float[][] hostX;
    private float[][] hostEncT;
    private float[] hostEnc;

    public CrossLayerTranscoder(CltConfig config, DataType dtype) {
        if (dtype != DataType.FLOAT && dtype != DataType.DOUBLE) {
            throw new IllegalArgumentException("CLT data type " + dtype + " is not supported; train in FLOAT (tests may use DOUBLE)");
        }
        this.config = config.validated();
        this.dtype = dtype;
        this.layers = config.layers();
        this.d = config.dModel();
        this.features = config.featuresPerLayer();
        // ND4J arrays are long-indexed and checkpoints are sharded (checkpointSegments), so no 2^31 cap here.
        long count = parameterCount(config);
        params = Nd4j.zeros(dtype, 1, count);
        grads = Nd4j.zeros(dtype, 1, count);
        wEnc = new INDArray[layers];
        bEnc = new INDArray[layers];
        logThreshold = new INDArray[layers];
        bDec = new INDArray[layers];
        wDec = new INDArray[layers][];
        gWEnc = new INDArray[layers];
        gBEnc = new INDArray[layers];
        gLogThreshold = new INDArray[layers];
        gBDec = new INDArray[layers];
        gWDec = new INDArray[layers][];
        layOut(params, wEnc, bEnc, logThreshold, bDec, wDec);
        layOut(grads, gWEnc, gBEnc, gLogThreshold, gBDec, gWDec);
        threshold = new INDArray[layers];
        decoderNorms = new INDArray[layers];
        normGrad = new INDArray[layers];
        deadMask = new INDArray[layers];
        deadCount = new int[layers];
        fireCounts = Nd4j.zeros(dtype, (long) layers * features);
        fireCountViews = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            threshold[l] = Nd4j.zeros(dtype, features);
            decoderNorms[l] = Nd4j.zeros(dtype, features);
            normGrad[l] = Nd4j.zeros(dtype, features);
            deadMask[l] = Nd4j.zeros(dtype, features);
            fireCountViews[l] = fireCounts.get(NDArrayIndex.interval((long) l * features, (long) (l + 1) * features));
        }
        rowA = Nd4j.zeros(dtype, features);
        rowB = Nd4j.zeros(dtype, features);
        decoderScratch = Nd4j.create(dtype, features, d);
        sparsityCoefficient = config.sparsityCoefficient();
    }

    /** Parameter count: {@code L (d F + 2 F) + L d + F d L (L + 1) / 2}. */
    public static long parameterCount(CltConfig c) {
        long l = c.layers();
        long d = c.dModel();
        long f = c.featuresPerLayer();
        return l * (d * f + 2 * f) + l * d + f * d * l * (l + 1) / 2;
    }

    /** fp32 bytes of a config: parameters (once) and the training batch buffers. */
    public static MemoryEstimate estimateMemory(CltConfig c) {
        long parameters = parameterCount(c);
        long b = c.batchSize();
        long bufferFloats = 2L * c.layers() * b * c.featuresPerLayer() + 3L * b * c.featuresPerLayer()
                + 4L * c.layers() * b * c.dModel() + (long) c.featuresPerLayer() * c.dModel();
        return new MemoryEstimate(parameters, 4 * parameters, 4 * bufferFloats);
    }

    /** Throws, before anything is allocated, if training {@code c} needs more than {@code budgetBytes}. */
    public static MemoryEstimate checkFits(CltConfig c, long budgetBytes) {
        MemoryEstimate m = estimateMemory(c);
        if (m.totalBytes() > budgetBytes) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "CLT needs %s (params %s x 4 for weights, gradients, Adam m and v, + batch buffers %s) but the budget is %s;"
                            + " lower --features-per-layer or raise the executor memory",
                    gib(m.totalBytes()), gib(m.parameterBytes()), gib(m.batchBufferBytes()), gib(budgetBytes)));
        }
        return m;
    }

    private static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
    }

    private void layOut(INDArray flat, INDArray[] enc, INDArray[] encBias, INDArray[] logTheta, INDArray[] decBias,
                        INDArray[][] dec) {
        long[] offset = {0};
        for (int l = 0; l < layers; l++) {
            enc[l] = view(flat, offset, d, features);
            encBias[l] = view(flat, offset, features);
            logTheta[l] = view(flat, offset, features);
        }
        for (int l = 0; l < layers; l++) {
            decBias[l] = view(flat, offset, d);
        }
        for (int l = 0; l < layers; l++) {
            dec[l] = new INDArray[layers - l];
            for (int t = l; t < layers; t++) {
                dec[l][t - l] = view(flat, offset, features, d);
            }
        }
    }

    /**
     * The flat parameter array cut per layer, in layout order: each layer's encoder (W_enc, b_enc,
     * log threshold), all decoder biases, then each source layer's decoders. Checkpoints shard along these.
     */
    public List<training.trainer.Checkpoints.Segment> checkpointSegments() {
        List<training.trainer.Checkpoints.Segment> out = new java.util.ArrayList<>();
        long offset = 0;
        long encoder = (long) d * features + 2L * features;
        for (int l = 0; l < layers; l++) {
            out.add(new training.trainer.Checkpoints.Segment("layer_" + l + ".encoder", offset, encoder));
            offset += encoder;
        }
        out.add(new training.trainer.Checkpoints.Segment("b_dec", offset, (long) layers * d));
        offset += (long) layers * d;
        for (int l = 0; l < layers; l++) {
            long decoders = (long) (layers - l) * features * d;
            out.add(new training.trainer.Checkpoints.Segment("layer_" + l + ".decoders", offset, decoders));
            offset += decoders;
        }
        return out;
    }

    private static INDArray view(INDArray flat, long[] offset, long... shape) {
        long length = 1;
        for (long s : shape) {
            length *= s;
        }
        INDArray slice = flat.get(NDArrayIndex.point(0), NDArrayIndex.interval(offset[0], offset[0] + length));
        offset[0] += length;
        return shape.length == 1 ? slice : slice.reshape('c', shape);
    }

    // ---- accessors ----

    public CltConfig config() { return config; }
    public DataType dataType() { return dtype; }
    public int layers() { return layers; }
    public int dModel() { return d; }
    public int featuresPerLayer() { return features; }
    /** All parameters as one row vector [1, n]; the named tensors are views of it. */
    public INDArray parameters() { return params; }
    /** Gradients of the last {@link #forwardBackward}, same layout as {@link #parameters()}. */
    public INDArray gradients() { return grads; }
    /** Encoder of layer l, [d, F] (circuit-tracer stores its transpose). */
    public INDArray wEnc(int layer) { return wEnc[layer]; }
    public INDArray bEnc(int layer) { return bEnc[layer]; }
    public INDArray logThreshold(int layer) { return logThreshold[layer]; }
    /** Thresholds exp(log theta) of layer l [F]; allocates. */
    public INDArray threshold(int layer) { return Transforms.exp(logThreshold[layer], true); }
    /** Decoder bias of TARGET layer l [d]. */
    public INDArray bDec(int layer) { return bDec[layer]; }
    /** Decoder from source layer to target layer (target >= source), [F, d]. */
    public INDArray wDec(int source, int target) {
        if (target < source) {
            throw new IllegalArgumentException("features of layer " + source + " do not write to earlier layer " + target);
        }
        return wDec[source][target - source];
    }
    /** Per-feature firing counts [L * F] of the last forward pass (layer-major). */
    public INDArray lastFireCounts() { return fireCounts; }
    /** Prediction of target layer l from the last forward pass [batch, d]. */
    public INDArray lastPrediction(int layer) { return yHat[layer]; }
    public double sparsityCoefficient() { return sparsityCoefficient; }
    public void setSparsityCoefficient(double v) { sparsityCoefficient = v; }

    /** Marks dead features (true = dead), layer-major [L * F], for the pre-activation loss. */
    public void setDeadFeatures(boolean[] dead) {
        if (dead.length != layers * features) {
            throw new IllegalArgumentException("dead mask has " + dead.length + " entries, not layers x features = " + layers * features);
        }
        for (int l = 0; l < layers; l++) {
            double[] values = new double[features];
            int n = 0;
            for (int i = 0; i < features; i++) {
                if (dead[l * features + i]) {
                    values[i] = 1;
                    n++;
                }
            }
            deadMask[l].assign(Nd4j.createFromArray(values).castTo(dtype));
            deadCount[l] = n;
        }
    }

    /**
     * Anthropic's initialization: encoders U(+-1/sqrt(F)), decoders U(+-1/sqrt(L d)), biases 0,
     * thresholds at {@code thresholdInit}.
     */
    public void initialize(long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        double encoderBound = 1 / Math.sqrt(features);
        double decoderBound = 1 / Math.sqrt((double) layers * d);
        for (int l = 0; l < layers; l++) {
            wEnc[l].assign(uniform(random, encoderBound, d, features));
            bEnc[l].assign(0);
            logThreshold[l].assign(Math.log(config.thresholdInit()));
            bDec[l].assign(0);
        }
        for (int l = 0; l < layers; l++) {
            for (int t = l; t < layers; t++) {
                wDec[l][t - l].assign(uniform(random, decoderBound, features, d));
            }
        }
    }

    private INDArray uniform(SplittableRandom random, double bound, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((2 * random.nextDouble() - 1) * bound);
        }
        return Nd4j.createFromArray(v).reshape(rows, cols).castTo(dtype);
    }

    private void ensureBuffers(int rows) {
        if (rows == batch) {
            return;
        }
        batch = rows;
        z = new INDArray[layers];
        f = new INDArray[layers];
        yHat = new INDArray[layers];
        err = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            z[l] = Nd4j.create(dtype, rows, features);
            f[l] = Nd4j.create(dtype, rows, features);
            yHat[l] = Nd4j.create(dtype, rows, d);
            err[l] = Nd4j.create(dtype, rows, d);
        }
        mask = Nd4j.create(dtype, rows, features);
        df = Nd4j.create(dtype, rows, features);
        work = Nd4j.create(dtype, rows, features);
    }

    private void checkInputs(INDArray[] x, INDArray[] y) {
        if (x.length != layers || (y != null && y.length != layers)) {
            throw new IllegalArgumentException("the CLT needs one input and one target batch per layer (" + layers + "), got "
                    + x.length + (y == null ? "" : " and " + y.length));
        }
        long rows = x[0].size(0);
        for (int l = 0; l < layers; l++) {
            check(x[l], rows, "input", l);
            if (y != null) {
                check(y[l], rows, "target", l);
            }
        }
    }

    private void check(INDArray a, long rows, String what, int layer) {
        if (a.rank() != 2 || a.size(0) != rows || a.size(1) != d || a.dataType() != dtype) {
            throw new IllegalArgumentException("CLT " + what + " of layer " + layer + " has shape " + Arrays.toString(a.shape())
                    + " and type " + a.dataType() + "; expected [" + rows + ", " + d + "] " + dtype);
        }
    }

    /** Concatenated decoder norms n_l = sqrt(sum_t ||W_dec[l -> t]_i||^2) per source layer. */
    private void computeDecoderNorms() {
        for (int l = 0; l < layers; l++) {
            decoderNorms[l].assign(0);
            for (int t = l; t < layers; t++) {
                Nd4j.exec(new Norm2(wDec[l][t - l], rowA, 1));
                decoderNorms[l].addi(rowA.muli(rowA));
            }
            Transforms.sqrt(decoderNorms[l], false);
        }
    }

    private void forward(INDArray[] x, INDArray[] y) {
        forward(x, y, false);
    }

    /** {@code encoded}: {@link #encodeSparse} already computed z (without b_enc), the thresholds and decoder norms. */
    private void forward(INDArray[] x, INDArray[] y, boolean encoded) {
        ensureBuffers((int) x[0].size(0));
        xInput = x;
        if (!encoded) {
            computeDecoderNorms();
        }
        for (int l = 0; l < layers; l++) {
            if (!encoded) {
                Nd4j.gemm(x[l], wEnc[l], z[l], false, false, 1.0, 0.0);
                threshold[l].assign(logThreshold[l]);
                Transforms.exp(threshold[l], false);
            }
            JumpReluMath.fusedActivate(z[l], bEnc[l], threshold[l], f[l], fireCountViews[l]);
        }
        for (int t = 0; t < layers; t++) {
            yHat[t].assign(0).addiRowVector(bDec[t]);
            for (int l = 0; l <= t; l++) {
                Nd4j.gemm(f[l], wDec[l][t - l], yHat[t], false, false, 1.0, 1.0);
            }
            if (y != null) {
                Nd4j.exec(new SubOp(yHat[t], y[t], err[t]));
            }
        }
    }

    /** MSE and L0 from the forward state; the penalties too unless the backward pass computes them on its way. */
    private LossParts lossParts(boolean penalties) {
        double[] mseByLayer = new double[layers];
        double[] l0ByLayer = new double[layers];
        double mse = 0;
        double sparsity = 0;
        double preActivation = 0;
        double coefficient = config.preActLossCoefficient();
        for (int l = 0; l < layers; l++) {
            double n = err[l].norm2Number().doubleValue();
            mseByLayer[l] = n * n / batch;
            mse += mseByLayer[l];
            l0ByLayer[l] = fireCountViews[l].sumNumber().doubleValue() / batch;
            if (!penalties) {
                continue;
            }
            sparsity += JumpReluMath.tanhPenalty(f[l], decoderNorms[l], config.tanhScale(), sparsityCoefficient / batch, rowA, work);
            if (coefficient > 0 && deadCount[l] > 0) {
                preActivation += JumpReluMath.preActivationLoss(z[l], threshold[l], decoderNorms[l], deadMask[l], coefficient / batch,
                        false, work, mask, null, null, null, rowA, rowB);
            }
        }
        return new LossParts(mse + sparsity + preActivation, mse, sparsity, preActivation, mseByLayer, l0ByLayer);
    }

    /** Loss of (normalized) inputs and targets, one [batch, d] array per layer, without gradients. */
    public LossParts loss(INDArray[] x, INDArray[] y) {
        checkInputs(x, y);
        forward(x, y);
        return lossParts(true);
    }

    /** Forward and backward pass: fills {@link #gradients()} and {@link #lastFireCounts()}. */
    public LossParts forwardBackward(INDArray[] x, INDArray[] y) {
        checkInputs(x, y);
        // The last pass dense at an L0 that says dense again: skip collecting the entries.
        boolean skip = !lastSparse && lastDenseL0 != null && x[0].size(0) == batch && denseAgain();
        boolean scanned = !skip && decoding != SparseAutoencoder.Decoding.DENSE && dtype == DataType.FLOAT;
        lastSparse = scanned && encodeSparse(x);
        if (lastSparse) {
            return sparseForwardBackward(x, y);
        }
        forward(x, y, scanned);
        LossParts mseParts = lossParts(false);
        lastDenseL0 = mseParts.l0ByLayer();
        double sparsity = 0;
        double preActivation = 0;

        double coefficient = config.preActLossCoefficient();
        for (int t = 0; t < layers; t++) {
            err[t].muli(2.0 / batch); // dLoss/dy_hat_t
            ColumnSums.of(err[t], gBDec[t]);
        }
        for (int l = 0; l < layers; l++) {
            // Decoder gradients and dLoss/da_l, before the sparsity backward reuses f_l as scratch.
            for (int t = l; t < layers; t++) {
                Nd4j.gemm(f[l], err[t], gWDec[l][t - l], true, false, 1.0, 0.0);
                Nd4j.gemm(err[t], wDec[l][t - l], df, false, true, 1.0, t == l ? 0.0 : 1.0);
            }
            normGrad[l].assign(0);
            double[] penalties = JumpReluMath.fusedTanhBackward(z[l], f[l], df, threshold[l], decoderNorms[l], deadMask[l],
                    normGrad[l], gLogThreshold[l], gBEnc[l], sparsityCoefficient / batch, config.tanhScale(), config.bandwidth(),
                    deadCount[l] > 0 ? coefficient / batch : 0);
            sparsity += penalties[0];
            preActivation += penalties[1];
            Nd4j.gemm(xInput[l], df, gWEnc[l], true, false, 1.0, 0.0);
            addNormPenaltyGradient(l);
        }
        return new LossParts(mseParts.mse() + sparsity + preActivation, mseParts.mse(), sparsity, preActivation,
                mseParts.mseByLayer(), mseParts.l0ByLayer());
    }

    /** Forces the sparse or dense training pass (tests, benchmarks), or AUTO (the default: the cost model below). */
    public void setDecoding(SparseAutoencoder.Decoding mode) {
        decoding = mode;
    }

    /** Whether the last {@link #forwardBackward} took the sparse path. */
    public boolean lastPassSparse() {
        return lastSparse;
    }

    /** Per-layer L0 of the last dense training pass, or null before one. */
    private double[] lastDenseL0;

    private boolean denseAgain() {
        if (decoding != SparseAutoencoder.Decoding.AUTO) {
            return false;
        }
        long[] active = new long[layers];
        for (int l = 0; l < layers; l++) {
            active[l] = (long) (lastDenseL0[l] * batch);
        }
        return !sparsePays(active, active);
    }

    /**
     * The SAE's cost model ({@link SparseAutoencoder#SPARSE_FLOP_COST}) over the layers: dense, the
     * decoder products, their weight gradients and dLoss/da cost 3 x 2 B F d L(L+1)/2 flops and the
     * encoder gradient 2 B d F L, at gemm speed; sparse, 2 d flops per entry and product (decoding
     * and the decoder gradient over each source layer's active entries into its L - l targets,
     * dLoss/da over all entries (a dot at the active ones, a per-feature sum at the others), the
     * encoder gradient over the active ones) at SPARSE_FLOP_COST times
     * that, plus the host copies of the decoders and both gradients. At the bench's full shape
     * (4 layers, d 256, 4096 features, about 70 active and 45 window entries per row and layer)
     * the sparse step took 3.2 s against 6.4 s dense.
     */
    private boolean sparsePays(long[] activeByLayer, long[] entriesByLayer) {
        if (decoding == SparseAutoencoder.Decoding.SPARSE) {
            return true;
        }
        double pairs = layers * (layers + 1) / 2.0;
        // Host copies on the Java heap: every decoder, one decoder and one encoder gradient, the batch rows.
        long hostBytes = 4L * features * d * ((long) pairs + 3) + 4L * batch * d * (layers + 2);
        if (hostDecoders == null && !SparseRows.fitsHeap(hostBytes)) {
            return false;
        }
        double dense = 2.0 * batch * features * d * (3 * pairs + layers);
        double sparse = 0;
        for (int l = 0; l < layers; l++) {
            int targets = layers - l;
            sparse += 2.0 * d * (activeByLayer[l] * (2.0 * targets + 1) + entriesByLayer[l] * targets);
        }
        sparse = SPARSE_FLOP_COST * sparse + 2.0 * features * d * (2 * pairs + 2 * layers);
        return sparse < dense;
    }

    /** The SAE's calibration: the same host loops. */
    private static final double SPARSE_FLOP_COST = SparseAutoencoder.SPARSE_FLOP_COST;

    /**
     * Encoder gemms and one pass per layer over z (without writing it back): the entries the sparse
     * pass needs, as {@link JumpReluMath#fusedActivate} and {@link JumpReluMath#fusedTanhBackward}
     * compare them (the same double arithmetic). Returns the cost model's verdict; if false, z still
     * lacks b_enc and the dense pass proceeds from it.
     */
    private boolean encodeSparse(INDArray[] x) {
        ensureBuffers((int) x[0].size(0));
        xInput = x;
        computeDecoderNorms();
        if (entries == null || entries.length != layers) {
            entries = new SparseRows[layers];
            deadSums = new double[layers][];
            for (int l = 0; l < layers; l++) {
                entries[l] = new SparseRows();
            }
        }
        long[] activeByLayer = new long[layers];
        long[] entriesByLayer = new long[layers];
        double halfWidth = config.bandwidth() / 2;
        for (int l = 0; l < layers; l++) {
            Nd4j.gemm(x[l], wEnc[l], z[l], false, false, 1.0, 0.0);
            threshold[l].assign(logThreshold[l]);
            Transforms.exp(threshold[l], false);
            double[] bias = bEnc[l].toDoubleVector();
            double[] theta = threshold[l].toDoubleVector();
            boolean preAct = config.preActLossCoefficient() > 0 && deadCount[l] > 0;
            double[] dead = deadMask[l].toDoubleVector();
            java.nio.FloatBuffer zs = hostView(z[l]);
            int n = features;
            SparseRows.Sink[] sinks = entries[l].fill(batch, n, (r, sink) -> {
                float[] row = sink.row(n);
                zs.get(r * n, row, 0, n);
                double[] acc = preAct ? sink.accumulator(2 * n) : null;
                for (int i = 0; i < n; i++) {
                    float zf = (float) (row[i] + bias[i]); // as fusedActivate stores it
                    double zz = zf;
                    double th = theta[i];
                    boolean on = zz > th;
                    boolean exception = false;
                    if (preAct && dead[i] != 0) {
                        if (th > zz) {
                            acc[i] += th - zz;
                            acc[n + i] += 1;
                        } else {
                            exception = true;
                        }
                    }
                    if (on || exception || Math.abs(zz - th) < halfWidth) {
                        sink.add(i, on ? zf : 0f, zf);
                    }
                }
            });
            double[] sums = null;
            if (preAct) {
                sums = new double[2 * n];
                for (SparseRows.Sink sink : sinks) {
                    if (sink.used()) {
                        for (int i = 0; i < 2 * n; i++) {
                            sums[i] += sink.accumulator[i];
                        }
                    }
                }
            }
            deadSums[l] = sums;
            activeByLayer[l] = entries[l].activeCount();
            entriesByLayer[l] = entries[l].size();
        }
        return sparsePays(activeByLayer, entriesByLayer);
    }

    private static java.nio.FloatBuffer hostView(INDArray whole) {
        return whole.data().asNio().order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    }

    /**
     * The training pass over the entries of {@link #entries}: each layer's active features decode
     * into all later layers' predictions and get their decoder gradients as sparse-dense products,
     * dLoss/da is computed at the entries only, and the encoder gradient is a sparse^T x dense
     * product (plus, with the pre-activation loss, a rank-one term per dead feature, whose rows
     * with z >= theta are entries that take it back). The same formulas as the dense pass;
     * gradients of features with no entry are 0 there too.
     */
    private LossParts sparseForwardBackward(INDArray[] x, INDArray[] y) {
        int fd = features * d;
        if (hostDecoders == null) {
            hostDecoders = new float[layers * (layers + 1) / 2][][];
            hostErr = new float[layers][][];
        }
        for (int l = 0; l < layers; l++) {
            SparseRows a = entries[l];
            fireCountViews[l].assign(Nd4j.createFromArray(a.activeColumnCounts()).castTo(dtype));
            for (int t = l; t < layers; t++) {
                hostDecoders[pair(l, t)] = SparseRows.readRows(wDec[l][t - l], hostDecoders[pair(l, t)]);
            }
        }
        float[][] out = null;
        for (int t = 0; t < layers; t++) {
            out = SparseRows.zeroed(out, batch, d);
            float[] bias = SparseRows.read(bDec[t], null);
            for (int b = 0; b < batch; b++) {
                System.arraycopy(bias, 0, out[b], 0, d);
            }
            for (int l = 0; l <= t; l++) {
                entries[l].decode(hostDecoders[pair(l, t)], out);
            }
            SparseRows.writeRows(out, yHat[t]);
            Nd4j.exec(new SubOp(yHat[t], y[t], err[t]));
        }
        LossParts mseParts = lossParts(false);
        double sparsity = 0;
        double preActivation = 0;
        double coefficient = config.preActLossCoefficient();
        for (int t = 0; t < layers; t++) {
            err[t].muli(2.0 / batch); // dLoss/dy_hat_t
            ColumnSums.of(err[t], gBDec[t]);
            hostErr[t] = SparseRows.readRows(err[t], hostErr[t]);
        }
        double lambdaOverBatch = sparsityCoefficient / batch;
        double tanhScale = config.tanhScale();
        double sc = lambdaOverBatch * tanhScale;
        double bandwidth = config.bandwidth();
        double halfWidth = bandwidth / 2;
        for (int l = 0; l < layers; l++) {
            SparseRows a = entries[l];
            double[] inactiveDf = new double[features]; // dLoss/da summed per feature over its inactive (window) entries
            for (int t = l; t < layers; t++) {
                a.dots(hostErr[t], hostDecoders[pair(l, t)], a.grad, t != l); // dLoss/da at the active entries
                a.inactiveDots(hostErr[t], hostDecoders[pair(l, t)], inactiveDf);
                hostDecoderGrad = SparseRows.zeroed(hostDecoderGrad, features, d);
                a.transposeTimes(a.f, hostErr[t], hostDecoderGrad);
                SparseRows.writeRows(hostDecoderGrad, gWDec[l][t - l]);
            }
            // fusedTanhBackward entry by entry.
            double[] theta = threshold[l].toDoubleVector();
            double[] norm = decoderNorms[l].toDoubleVector();
            double[] dead = deadMask[l].toDoubleVector();
            double preAct = deadCount[l] > 0 ? coefficient / batch : 0;
            double[] ng = new double[features];
            double[] thetaGrad = new double[features];
            double[] gb = new double[features];
            double tanhSum = 0;
            for (int e = 0; e < a.size(); e++) {
                int i = a.col[e];
                double zz = a.pre[e];
                double act = a.f[e];
                double g = a.grad[e];
                double th = theta[i];
                double dz = 0;
                if (act != 0) {
                    double tv = Math.tanh(tanhScale * act * norm[i]);
                    double sech2 = 1 - tv * tv;
                    tanhSum += tv;
                    g += sc * norm[i] * sech2;
                    ng[i] += sc * act * sech2;
                    dz = g;
                } else {
                    g += sc * norm[i]; // tanh'(0) = 1: it still reaches theta through the kernel
                }
                if (Math.abs(zz - th) < halfWidth) {
                    thetaGrad[i] -= g * th / bandwidth; // at an inactive entry g lacks dLoss/da: inactiveDf below
                }
                if (preAct != 0 && dead[i] != 0 && !(th > zz)) {
                    dz += preAct * norm[i]; // takes back the rank-one term below on this row
                }
                a.grad[e] = (float) dz;
                gb[i] += dz;
            }
            // Inactive entries all lie in the window (an inactive dead-feature exception has z = theta).
            for (int i = 0; i < features; i++) {
                thetaGrad[i] -= inactiveDf[i] * theta[i] / bandwidth;
            }
            sparsity += lambdaOverBatch * tanhSum;
            double[] rankOne = null;
            if (preAct != 0) {
                double[] sums = deadSums[l];
                rankOne = new double[features];
                double preSum = 0;
                for (int i = 0; i < features; i++) {
                    if (dead[i] != 0) {
                        preSum += norm[i] * sums[i];
                        ng[i] += preAct * sums[i];
                        thetaGrad[i] += preAct * norm[i] * sums[features + i];
                        rankOne[i] = -preAct * norm[i];
                        gb[i] += rankOne[i] * batch;
                    }
                }
                preActivation += preAct * preSum;
            }
            for (int i = 0; i < features; i++) {
                thetaGrad[i] *= theta[i]; // d/dlog_theta = theta d/dtheta
            }
            normGrad[l].assign(Nd4j.createFromArray(ng).castTo(dtype));
            gLogThreshold[l].assign(Nd4j.createFromArray(thetaGrad).castTo(dtype));
            gBEnc[l].assign(Nd4j.createFromArray(gb).castTo(dtype));

            hostX = SparseRows.readRows(xInput[l], hostX);
            hostEncT = SparseRows.zeroed(hostEncT, features, d);
            a.transposeTimes(a.grad, hostX, hostEncT);
            if (rankOne != null) {
                double[] xSum = new double[d];
                for (int b = 0; b < batch; b++) {
                    for (int j = 0; j < d; j++) {
                        xSum[j] += hostX[b][j];
                    }
                }
                for (int i = 0; i < features; i++) {
                    if (rankOne[i] != 0) {
                        for (int j = 0; j < d; j++) {
                            hostEncT[i][j] += (float) (rankOne[i] * xSum[j]);
                        }
                    }
                }
            }
            if (hostEnc == null || hostEnc.length < fd) {
                hostEnc = new float[fd];
            }
            SparseRows.transpose(hostEncT, hostEnc);
            SparseRows.write(hostEnc, gWEnc[l]);
            addNormPenaltyGradient(l);
        }
        return new LossParts(mseParts.mse() + sparsity + preActivation, mseParts.mse(), sparsity, preActivation,
                mseParts.mseByLayer(), mseParts.l0ByLayer());
    }

    /** Norm-weighted penalties: dn/dW_dec[l -> t]_i = W_dec[l -> t]_i / n_i, added to layer l's decoder gradients. */
    private void addNormPenaltyGradient(int l) {
        if (normGrad[l].amaxNumber().doubleValue() != 0) {
            rowA.assign(normGrad[l]).divi(decoderNorms[l]);
            for (int t = l; t < layers; t++) {
                Nd4j.exec(new BroadcastMulOp(wDec[l][t - l], rowA, decoderScratch, 0));
                gWDec[l][t - l].addi(decoderScratch);
            }
        }
    }

    /** Index of the decoder from source l to target t in layout order. */
    private int pair(int l, int t) {
        return l * layers - l * (l - 1) / 2 + (t - l);
    }

    /** Feature activations of layer l for (normalized) inputs [n, d] -> [n, F]; allocates. */
    public INDArray encode(int layer, INDArray x) {
        INDArray pre = x.mmul(wEnc[layer]).addiRowVector(bEnc[layer]);
        INDArray keep = Nd4j.create(dtype, pre.shape());
        Nd4j.exec(new BroadcastSubOp(pre, threshold(layer), keep, 1));
        Nd4j.exec(new Step(keep, keep, 0.0));
        return pre.muli(keep);
    }

    /** Prediction of target layer t [n, d] from the activations of every layer (index = source layer); allocates. */
    public INDArray decode(int target, INDArray[] activations) {
        INDArray out = Nd4j.zeros(dtype, activations[0].size(0), d).addiRowVector(bDec[target]);
        for (int l = 0; l <= target; l++) {
            out.addi(activations[l].mmul(wDec[l][target - l]));
        }
        return out;
    }
}
