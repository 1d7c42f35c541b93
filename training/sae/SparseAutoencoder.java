package training.sae;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastMulOp;
import org.nd4j.linalg.api.ops.impl.broadcast.BroadcastSubOp;
import org.nd4j.linalg.api.ops.impl.reduce.floating.Norm2;
import org.nd4j.linalg.api.ops.impl.scalar.Step;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.SubOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

import java.util.SplittableRandom;

/**
 * A sparse autoencoder: {@code z = (x - b_dec) W_enc + b_enc}, {@code f = act(z)},
 * {@code x_hat = f W_dec + b_dec}, trained on the per-token squared error (summed over d_in,
 * averaged over the batch) plus the architecture's sparsity and auxiliary terms.
 *
 * <p>The same classes are transcoders when {@link SaeConfig#isTranscoder()}: the input x [d_in]
 * is encoded as {@code z = x W_enc + b_enc} (no b_dec subtraction) and the target y [d_out] is
 * predicted as {@code y_hat = f W_dec + b_dec (+ x W_skip)}; an SAE is the case y = x.
 *
 * <p>All parameters are views of one flat row vector {@link #parameters()} (layout: W_enc
 * [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out], b_dec [d_out], W_skip [d_in, d_out] if
 * present, then the architecture's extra parameters), and {@link #forwardBackward} writes the gradients into {@link #gradients()} with the
 * same layout, so one optimizer call updates everything. Per-batch buffers are allocated once per
 * batch size; the hot path is five {@code Nd4j.gemm} calls into them plus in-place elementwise ops.
 *
 * <p>Subclasses supply the activation, the sparsity penalty and the auxiliary loss. Not thread-safe.
 */
public abstract class SparseAutoencoder {

    /** One batch's loss, split into its parts (each already weighted by its coefficient). */
    public record LossParts(double total, double mse, double sparsity, double auxiliary, double l0) {
    }

    protected final SaeConfig config;
    protected final DataType dtype;
    protected final int dIn;
    protected final int dSae;
    /** Target width (d_in for an autoencoder). */
    protected final int dOut;
    protected final boolean transcoder;

    private final INDArray params;
    private final INDArray grads;
    protected final INDArray wEnc;
    protected final INDArray bEnc;
    protected final INDArray wDec;
    protected final INDArray bDec;
    protected final INDArray gWEnc;
    protected final INDArray gBEnc;
    protected final INDArray gWDec;
    protected final INDArray gBDec;
    /** Skip connection [d_in, d_out] and its gradient; null without one. */
    protected final INDArray wSkip;
    protected final INDArray gWSkip;
    private final long sharedParameterCount;

    /** ||W_dec,i||, refreshed at the start of every forward pass. */
    protected final INDArray decoderNorms;
    /** dLoss/d||W_dec,i||, accumulated by the penalties that weight by decoder norms. */
    protected final INDArray normGrad;
    /** 1 for features the trainer counts as dead (for AuxK and the pre-activation loss), else 0. */
    protected final INDArray deadMask;
    /** Tokens of the last batch on which each feature fired. */
    protected final INDArray fireCounts;
    protected final INDArray featureScratch;
    private final INDArray dInColumn;
    private INDArray decoderScratch;
    protected int deadCount;
    /** Indices of the dead features, ascending. */
    protected int[] deadIndices = new int[0];
    protected double sparsityCoefficient;

    protected int batch = -1;
    /** The encoder's input: x - b_dec (autoencoder, own buffer) or x itself (transcoder). */
    protected INDArray xCentered;
    private INDArray xCenteredBuffer;
    private INDArray input;
    protected INDArray z;
    protected INDArray f;
    protected INDArray mask;
    protected INDArray df;
    protected INDArray work;
    protected INDArray xHat;
    protected INDArray err;

    /** How {@link #forwardBackward} decodes: AUTO picks sparse or dense per batch (see {@link #sparsePays}). */
    public enum Decoding { AUTO, DENSE, SPARSE }

    private Decoding decoding = Decoding.AUTO;
    private boolean lastSparse;
    /** L0 of the last dense training pass (negative before one): see {@link #denseAgain}. */
    private double lastDenseL0 = -1;
    /** Sparse path: the batch's active latents (and entries the backward pass needs), by row. */
    protected final SparseRows active = new SparseRows();
    /** Sparse path: entries of an auxiliary term's own dLoss/dz (AuxK's dead latents); used if {@link #auxEntriesUsed}. */
    protected final SparseRows auxEntries = new SparseRows();
    protected boolean auxEntriesUsed;
    /**
     * Sparse path: per-latent c_i with dLoss/dz[b, i] += c_i at every row b (JumpReLU's pre-activation
     * loss on dead latents, applied as a rank-one update of the encoder gradient), or null.
     */
    protected double[] rankOneColumns;
    /** Sparse path: per latent, dLoss/df summed over its inactive entries (JumpReLU's threshold window). */
    protected double[] inactiveDf;
    private float[][] hostWDec;
    private float[][] hostErr;
    private float[][] hostX;
    private float[][] hostOut;
    private float[][] hostGDec;
    private float[][] hostGEncT;
    private float[] hostGEnc;

    protected SparseAutoencoder(SaeConfig config, DataType dtype, int extraParameters) {
        if (dtype != DataType.FLOAT && dtype != DataType.DOUBLE) {
            throw new IllegalArgumentException("SAE data type " + dtype + " is not supported; train in FLOAT (tests may use DOUBLE)");
        }
        this.config = config;
        this.dtype = dtype;
        this.dIn = config.dIn();
        this.dSae = config.dSae();
        this.dOut = config.targetWidth();
        this.transcoder = config.isTranscoder();
        boolean skip = config.skipConnection();
        sharedParameterCount = (long) dIn * dSae + dSae + (long) dSae * dOut + dOut + (skip ? (long) dIn * dOut : 0);
        long count = sharedParameterCount + extraParameters;
        if (count > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("d_in x d_sae = " + (long) dIn * dSae + " is too large for one parameter array; lower d_sae");
        }
        params = Nd4j.zeros(dtype, 1, count);
        grads = Nd4j.zeros(dtype, 1, count);
        long[] offset = {0};
        wEnc = view(params, offset, dIn, dSae);
        bEnc = view(params, offset, dSae);
        wDec = view(params, offset, dSae, dOut);
        bDec = view(params, offset, dOut);
        wSkip = skip ? view(params, offset, dIn, dOut) : null;
        offset[0] = 0;
        gWEnc = view(grads, offset, dIn, dSae);
        gBEnc = view(grads, offset, dSae);
        gWDec = view(grads, offset, dSae, dOut);
        gBDec = view(grads, offset, dOut);
        gWSkip = skip ? view(grads, offset, dIn, dOut) : null;
        decoderNorms = Nd4j.zeros(dtype, dSae);
        normGrad = Nd4j.zeros(dtype, dSae);
        deadMask = Nd4j.zeros(dtype, dSae);
        fireCounts = Nd4j.zeros(dtype, dSae);
        featureScratch = Nd4j.zeros(dtype, dSae);
        dInColumn = Nd4j.zeros(dtype, dIn, 1);
        sparsityCoefficient = config.sparsityCoefficient();
    }

    /** Builds the dictionary class for {@code config.architecture()}. */
    public static SparseAutoencoder create(SaeConfig config, DataType dtype) {
        return switch (config.architecture()) {
            case RELU -> new ReluSae(config, dtype);
            case JUMPRELU -> new JumpReluSae(config, dtype);
            case TOPK -> new TopKSae(config, dtype);
            case BATCHTOPK -> new BatchTopKSae(config, dtype);
            case MATRYOSHKA -> new MatryoshkaBatchTopKSae(config, dtype);
            case GATED -> new GatedSae(config, dtype);
        };
    }

    /** The parameters after the shared tensors (and W_skip), for subclasses (e.g. log-thresholds). */
    protected final INDArray extraParameterView(long size) {
        return view(params, new long[] {sharedParameterCount}, size);
    }

    protected final INDArray extraGradientView(long size) {
        return view(grads, new long[] {sharedParameterCount}, size);
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

    public SaeConfig config() {
        return config;
    }

    /** Parameters before the architecture's own (W_enc, b_enc, W_dec, b_dec, W_skip). */
    public long sharedParameterCount() {
        return sharedParameterCount;
    }

    public DataType dataType() {
        return dtype;
    }

    public int dIn() {
        return dIn;
    }

    public int dSae() {
        return dSae;
    }

    /** Target width: d_out for a transcoder, d_in for an autoencoder. */
    public int dOut() {
        return dOut;
    }

    public boolean isTranscoder() {
        return transcoder;
    }

    /** Skip-connection weights [d_in, d_out], or null without a skip connection. */
    public INDArray wSkip() {
        return wSkip;
    }

    /** All parameters as one row vector [1, n]; the named tensors below are views of it. */
    public INDArray parameters() {
        return params;
    }

    /** Gradients of the last {@link #forwardBackward}, same layout as {@link #parameters()}. */
    public INDArray gradients() {
        return grads;
    }

    public INDArray wEnc() {
        return wEnc;
    }

    public INDArray bEnc() {
        return bEnc;
    }

    public INDArray wDec() {
        return wDec;
    }

    public INDArray bDec() {
        return bDec;
    }

    /** Per-feature firing counts [d_sae] of the last forward pass (tokens on which f_i > 0). */
    public INDArray lastFireCounts() {
        return fireCounts;
    }

    /** Reconstruction of the last forward pass [batch, d_in]. */
    public INDArray lastReconstruction() {
        return xHat;
    }

    public double sparsityCoefficient() {
        return sparsityCoefficient;
    }

    /** The sparsity coefficient for the next passes (the trainer warms it up from 0). */
    public void setSparsityCoefficient(double value) {
        sparsityCoefficient = value;
    }

    /** Marks dead features (true = dead), used by AuxK and the pre-activation loss. */
    public void setDeadFeatures(boolean[] dead) {
        if (dead.length != dSae) {
            throw new IllegalArgumentException("dead mask has " + dead.length + " entries, not d_sae = " + dSae);
        }
        double[] values = new double[dSae];
        int[] indices = new int[dSae];
        int n = 0;
        for (int i = 0; i < dSae; i++) {
            if (dead[i]) {
                values[i] = 1;
                indices[n++] = i;
            }
        }
        deadMask.assign(Nd4j.createFromArray(values).castTo(dtype));
        deadCount = n;
        deadIndices = java.util.Arrays.copyOf(indices, n);
    }

    /**
     * Initializes as in the shared recipe: decoder rows in random directions with norm
     * {@code decoderInitNorm}, W_enc = W_dec^T, b_enc = 0, b_dec from {@code sample} (rows of
     * normalized activations, may be null for ZERO init), plus the architecture's own parameters.
     */
    public void initialize(INDArray sample, long seed) {
        if (transcoder) {
            throw new IllegalStateException("a transcoder initializes b_dec from its targets; call initialize(inputSample, targetSample, seed)");
        }
        initialize(sample, sample, seed);
    }

    /**
     * Transcoder form of {@link #initialize(INDArray, long)}: b_dec comes from the target sample
     * [rows, d_out]; W_enc = W_dec^T when d_in = d_out, else independent random directions of the
     * same norm (columns); W_skip starts at 0.
     */
    public void initialize(INDArray inputSample, INDArray targetSample, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        wDec.assign(randomRows(random, dSae, dOut));
        if (dIn == dOut) {
            wEnc.assign(wDec.transpose());
        } else {
            wEnc.assign(randomRows(random, dSae, dIn).transpose());
        }
        bEnc.assign(0);
        bDec.assign(DecoderBias.initial(config.decoderBiasInit(), targetSample, dOut).castTo(dtype));
        if (wSkip != null) {
            wSkip.assign(0);
        }
        initializeExtra(inputSample);
    }

    /** [rows, cols] with each row a random direction of norm {@code decoderInitNorm}. */
    private INDArray randomRows(SplittableRandom random, int rows, int cols) {
        double[] values = new double[rows * cols];
        for (int i = 0; i < rows; i++) {
            double norm = 0;
            for (int j = 0; j < cols; j++) {
                double g = random.nextGaussian();
                values[i * cols + j] = g;
                norm += g * g;
            }
            double scale = config.decoderInitNorm() / Math.sqrt(norm);
            for (int j = 0; j < cols; j++) {
                values[i * cols + j] *= scale;
            }
        }
        return Nd4j.createFromArray(values).castTo(dtype).reshape(rows, cols);
    }

    /** The architecture's own parameters, once the shared ones are set; {@code inputSample} may be null. */
    protected void initializeExtra(INDArray inputSample) {
    }

    /** Pre-activations z [n, d_sae] of (normalized) inputs [n, d_in] at the current weights; allocates. */
    protected final INDArray preActivations(INDArray x) {
        return (transcoder ? x : x.subRowVector(bDec)).mmul(wEnc).addiRowVector(bEnc);
    }

    private void ensureBuffers(int rows) {
        if (rows == batch) {
            return;
        }
        batch = rows;
        xCenteredBuffer = transcoder ? null : Nd4j.create(dtype, rows, dIn);
        xHat = Nd4j.create(dtype, rows, dOut);
        err = Nd4j.create(dtype, rows, dOut);
        z = Nd4j.create(dtype, rows, dSae);
        f = Nd4j.create(dtype, rows, dSae);
        mask = Nd4j.create(dtype, rows, dSae);
        df = Nd4j.create(dtype, rows, dSae);
        work = Nd4j.create(dtype, rows, dSae);
        onBatchBuffers(rows);
    }

    /** Lets a subclass allocate its own per-batch buffers when the batch size changes. */
    protected void onBatchBuffers(int rows) {
    }

    /** Loss of a batch of (normalized) activations [batch, d_in] without gradients or statistics updates. */
    public LossParts loss(INDArray x) {
        return loss(x, autoencoderTarget(x));
    }

    /** Transcoder loss: inputs [batch, d_in], targets [batch, d_out]. */
    public LossParts loss(INDArray x, INDArray y) {
        checkInput(x, y);
        forward(x, y, false);
        double mse = squaredSum(err) / batch;
        double sparsity = sparsityLoss();
        double auxiliary = auxiliaryLoss(false, -1.0);
        double l0 = fireCounts.sumNumber().doubleValue() / batch;
        return new LossParts(mse + sparsity + auxiliary, mse, sparsity, auxiliary, l0);
    }

    /**
     * Forward and backward pass on a batch of (normalized) activations [batch, d_in]: fills
     * {@link #gradients()}, {@link #lastFireCounts()} and training statistics (BatchTopK threshold).
     */
    public LossParts forwardBackward(INDArray x) {
        return forwardBackward(x, autoencoderTarget(x));
    }

    /** Transcoder training pass: inputs [batch, d_in] (normalized), targets [batch, d_out] (normalized). */
    public LossParts forwardBackward(INDArray x, INDArray y) {
        checkInput(x, y);
        encodeBatch(x);
        lastSparse = decoding != Decoding.DENSE && dtype == DataType.FLOAT && activateSparse(true);
        if (lastSparse) {
            return sparseForwardBackward(x, y);
        }
        activate(true);
        decodeDense(x, y);
        double mse = squaredSum(err) / batch;
        double sparsity = sparsityLoss();
        double l0 = fireCounts.sumNumber().doubleValue() / batch;
        lastDenseL0 = l0;

        // err becomes dLoss/dy_hat = 2 (y_hat - y) / B.
        err.muli(2.0 / batch);
        Nd4j.gemm(f, err, gWDec, true, false, 1.0, 0.0);
        columnSums(err, gBDec);
        if (wSkip != null) {
            Nd4j.gemm(input, err, gWSkip, true, false, 1.0, 0.0);
        }
        Nd4j.gemm(err, wDec, df, false, true, 1.0, 0.0);
        normGrad.assign(0);
        sparsityBackward();
        df.muli(mask); // dLoss/dz through the activation
        // AuxK's residual x - x_hat is -(B/2) err now.
        double auxiliary = auxiliaryLoss(true, -batch / 2.0);

        Nd4j.gemm(xCentered, df, gWEnc, true, false, 1.0, 0.0);
        columnSums(df, gBEnc);
        finishBackward();
        return new LossParts(mse + sparsity + auxiliary, mse, sparsity, auxiliary, l0);
    }

    /** What both paths end with: b_dec's gradient through the encoder, the decoder-norm penalties, the architecture's fix-ups. */
    private void finishBackward() {
        if (!transcoder) {
            // b_dec enters the encoder as -b_dec W_enc: its gradient there is -W_enc (sum_b dz).
            Nd4j.gemm(wEnc, gBEnc.reshape(dSae, 1), dInColumn, false, false, 1.0, 0.0);
            gBDec.subi(dInColumn.reshape(dIn));
        }
        // Penalties weighted by ||W_dec,i||: d||w||/dw = w / ||w||.
        if (normGrad.amaxNumber().doubleValue() != 0) {
            if (decoderScratch == null) {
                decoderScratch = Nd4j.create(dtype, dSae, dOut);
            }
            featureScratch.assign(normGrad).divi(decoderNorms);
            Nd4j.exec(new BroadcastMulOp(wDec, featureScratch, decoderScratch, 0));
            gWDec.addi(decoderScratch);
        }
        afterBackward();
    }

    /**
     * The training pass over the active set only (fp32): the decoder product, its weight gradient
     * and dLoss/df become sparse-dense products over the entries of {@link #active} (host loops in
     * {@link SparseRows}); the encoder's forward product stays a dense gemm (every pre-activation is
     * needed to select), its weight gradient is a sparse^T x dense product. Gradients of latents with
     * no entry are exactly 0, as on the dense path, and the optimizer still updates every row.
     */
    private LossParts sparseForwardBackward(INDArray x, INDArray y) {
        hostWDec = SparseRows.readRows(wDec, hostWDec);
        hostOut = SparseRows.zeroed(hostOut, batch, dOut);
        float[] bias = SparseRows.read(bDec, null);
        for (int b = 0; b < batch; b++) {
            System.arraycopy(bias, 0, hostOut[b], 0, dOut);
        }
        active.decode(hostWDec, hostOut);
        SparseRows.writeRows(hostOut, xHat);
        if (wSkip != null) {
            Nd4j.gemm(x, wSkip, xHat, false, false, 1.0, 1.0);
        }
        Nd4j.exec(new SubOp(xHat, y, err));
        double mse = squaredSum(err) / batch;
        double sparsity = sparseSparsityLoss();
        double l0 = fireCounts.sumNumber().doubleValue() / batch;

        err.muli(2.0 / batch);
        columnSums(err, gBDec);
        if (wSkip != null) {
            Nd4j.gemm(input, err, gWSkip, true, false, 1.0, 0.0);
        }
        hostErr = SparseRows.readRows(err, hostErr);
        // dLoss/df at the active entries; summed per latent over the inactive ones (a threshold window).
        active.dots(hostErr, hostWDec, active.grad, false);
        inactiveDf = new double[dSae];
        active.inactiveDots(hostErr, hostWDec, inactiveDf);
        hostGDec = SparseRows.zeroed(hostGDec, dSae, dOut);
        active.transposeTimes(active.f, hostErr, hostGDec);
        normGrad.assign(0);
        sparseSparsityBackward();
        auxEntriesUsed = false;
        rankOneColumns = null;
        double auxiliary = sparseAuxiliaryLoss(true, -batch / 2.0, hostErr, hostWDec, hostGDec);
        SparseRows.writeRows(hostGDec, gWDec);

        // Encoder: gW_enc = x_c^T dz over the entries, computed latent-major then transposed.
        hostX = SparseRows.readRows(xCentered, hostX);
        hostGEncT = SparseRows.zeroed(hostGEncT, dSae, dIn);
        active.transposeTimes(active.grad, hostX, hostGEncT);
        double[] gb = new double[dSae];
        active.columnSums(active.grad, gb);
        if (auxEntriesUsed) {
            auxEntries.transposeTimes(auxEntries.grad, hostX, hostGEncT);
            auxEntries.columnSums(auxEntries.grad, gb);
        }
        if (rankOneColumns != null) {
            double[] xSum = new double[dIn];
            for (int b = 0; b < batch; b++) {
                for (int j = 0; j < dIn; j++) {
                    xSum[j] += hostX[b][j];
                }
            }
            for (int i = 0; i < dSae; i++) {
                double c = rankOneColumns[i];
                if (c != 0) {
                    for (int j = 0; j < dIn; j++) {
                        hostGEncT[i][j] += (float) (c * xSum[j]);
                    }
                    gb[i] += c * batch;
                }
            }
        }
        hostGEnc = ensure(hostGEnc, dSae * dIn);
        SparseRows.transpose(hostGEncT, hostGEnc);
        SparseRows.write(hostGEnc, gWEnc);
        gBEnc.assign(Nd4j.createFromArray(gb).castTo(dtype));
        finishBackward();
        return new LossParts(mse + sparsity + auxiliary, mse, sparsity, auxiliary, l0);
    }

    private static float[] ensure(float[] a, int length) {
        return a != null && a.length >= length ? a : new float[length];
    }

    /** Forces the sparse or dense path (tests, benchmarks), or AUTO (the default: the cost model). */
    public void setDecoding(Decoding mode) {
        decoding = mode;
    }

    /** Whether the last {@link #forwardBackward} took the sparse path. */
    public boolean lastPassSparse() {
        return lastSparse;
    }

    /** Whether the decoding mode forces the sparse path (AUTO: ask {@link #sparsePays}). */
    protected final boolean sparseForced() {
        return decoding == Decoding.SPARSE;
    }

    /**
     * Relative cost of one flop of the sparse host loops against one of a dense gemm. Dense, the
     * step's four [B, d_sae] x d products cost 8 B d_sae d flops at gemm speed; sparse, 2 d flops
     * per entry and product (three over the active entries, dLoss/df over the entries) at this
     * many times the cost, plus about 4 d_sae d float moves for the host copies of W_dec and both
     * weight gradients (one flop each). So TopK goes sparse below about L0 = d_sae / 10. Measured
     * (TopK, d_in 768, d_sae 4096, batch 2048, 2 cores, load 2.5, best of 5 steps each, forced
     * paths): sparse / dense step time 0.60 at L0 64, 0.74 at 256, 1.15 at 512, 2.4 at 1024, a
     * crossover near L0 = 420 = d_sae / 10.
     */
    public static final double SPARSE_FLOP_COST = 10.0;

    /** The cost model: whether {@code activeEntries} active of {@code entries} entries decode faster sparse. */
    protected final boolean sparsePays(long activeEntries, long entries) {
        if (sparseForced()) {
            return true;
        }
        // The host copies (W_dec, both weight gradients, the transposed encoder gradient, batch rows) live on the
        // Java heap, unlike the dense path's arrays: at d_sae 65536 x d 2304 they are 2.4 GB.
        long hostBytes = 4L * dSae * (2L * dOut + 2L * dIn) + 4L * batch * (2L * dOut + dIn);
        if (hostWDec == null && !SparseRows.fitsHeap(hostBytes)) {
            return false;
        }
        double d = Math.max(dIn, dOut);
        double dense = 8.0 * batch * dSae * d;
        double sparse = SPARSE_FLOP_COST * 2 * d * (3.0 * activeEntries + entries) + 4.0 * dSae * d;
        return sparse < dense;
    }

    /**
     * Whether the last pass was dense and its L0 says dense again: lets an architecture whose entry
     * count is known only after a scan (JumpReLU) skip collecting millions of entries at a large L0.
     */
    protected final boolean denseAgain() {
        long active = (long) (lastDenseL0 * batch);
        return !sparseForced() && !lastSparse && lastDenseL0 >= 0 && !sparsePays(active, active);
    }

    /**
     * Sparse activation from {@link #z}: fills {@link #active} (each active latent with f and z; an
     * architecture may add inactive entries its backward pass needs, with f = 0) and
     * {@link #fireCounts}, and returns true; or returns false to decode densely, leaving the state
     * so that {@link #activate} then gives exactly the dense pass (decide with {@link #sparsePays}).
     */
    protected boolean activateSparse(boolean training) {
        return false;
    }

    /** The sparsity term on the sparse path (from {@link #active} and {@link #fireCounts}). */
    protected double sparseSparsityLoss() {
        return 0;
    }

    /**
     * Sparse counterpart of {@link #sparsityBackward} plus the activation's mask: on entry
     * {@code active.grad} holds dLoss/df of the reconstruction at every active entry (0 at the
     * others, whose sum per latent is {@link #inactiveDf}); on exit dLoss/dz (0 at inactive entries). This default is the mask alone (architectures without a penalty).
     */
    protected void sparseSparsityBackward() {
        for (int e = 0; e < active.size(); e++) {
            if (active.f[e] == 0) {
                active.grad[e] = 0;
            }
        }
    }

    /**
     * Sparse counterpart of {@link #auxiliaryLoss}: {@code err} is the host copy of dLoss/dy_hat
     * [batch][d_out] (the residual x - x_hat is {@code residualScale * err}), {@code wDecHost} of
     * W_dec; adds W_dec gradients to {@code gDecHost}, dLoss/dz to {@code active.grad}, to
     * {@link #auxEntries} (setting {@link #auxEntriesUsed}) or to {@link #rankOneColumns}.
     */
    protected double sparseAuxiliaryLoss(boolean backward, double residualScale, float[][] err, float[][] wDecHost, float[][] gDecHost) {
        return 0;
    }

    private INDArray autoencoderTarget(INDArray x) {
        if (transcoder) {
            throw new IllegalStateException("a transcoder needs targets; pass the target batch [batch, " + dOut + "] too");
        }
        return x;
    }

    private void checkInput(INDArray x, INDArray y) {
        checkInput(x);
        if (y != x && (y.rank() != 2 || y.size(0) != x.size(0) || y.size(1) != dOut || y.dataType() != dtype)) {
            throw new IllegalArgumentException("transcoder target has shape " + java.util.Arrays.toString(y.shape()) + " and type "
                    + y.dataType() + "; expected [" + x.size(0) + ", " + dOut + "] " + dtype);
        }
    }

    private void checkInput(INDArray x) {
        if (x.rank() != 2 || x.size(1) != dIn) {
            throw new IllegalArgumentException("SAE input has shape " + java.util.Arrays.toString(x.shape())
                    + "; expected [batch, " + dIn + "]");
        }
        if (x.dataType() != dtype) {
            throw new IllegalArgumentException("SAE input is " + x.dataType() + " but the SAE computes in " + dtype);
        }
        if (x.size(0) > Integer.MAX_VALUE / Math.max(dSae, 1)) {
            throw new IllegalArgumentException("batch of " + x.size(0) + " rows is too large for d_sae " + dSae + "; lower the batch size");
        }
    }

    private void forward(INDArray x, INDArray y, boolean training) {
        encodeBatch(x);
        activate(training);
        decodeDense(x, y);
    }

    /** Buffers, decoder norms, the encoder's input and the pre-activations z. */
    private void encodeBatch(INDArray x) {
        ensureBuffers((int) x.size(0));
        input = x;
        Nd4j.exec(new Norm2(wDec, decoderNorms, 1));
        if (transcoder) {
            xCentered = x;
        } else {
            xCentered = xCenteredBuffer;
            Nd4j.exec(new BroadcastSubOp(x, bDec, xCentered, 1));
        }
        Nd4j.gemm(xCentered, wEnc, z, false, false, 1.0, 0.0);
        z.addiRowVector(bEnc);
    }

    private void decodeDense(INDArray x, INDArray y) {
        Nd4j.gemm(f, wDec, xHat, false, false, 1.0, 0.0);
        xHat.addiRowVector(bDec);
        if (wSkip != null) {
            Nd4j.gemm(x, wSkip, xHat, false, false, 1.0, 1.0);
        }
        Nd4j.exec(new SubOp(xHat, y, err));
    }

    /**
     * From {@link #z}: writes {@link #f}, {@link #mask} (df/dz, 0 or 1 per element) and
     * {@link #fireCounts} (column sums of f > 0). {@code training} lets BatchTopK update its
     * running threshold.
     */
    protected abstract void activate(boolean training);

    /** The weighted sparsity term from the forward state; may use {@link #df} and {@link #work} as scratch. */
    protected abstract double sparsityLoss();

    /**
     * Adds the sparsity term's dLoss/df to {@link #df}, its threshold gradients and its
     * dLoss/d||W_dec,i|| to {@link #normGrad}. {@link #f} and {@link #work} are free scratch here.
     */
    protected abstract void sparsityBackward();

    /**
     * The weighted auxiliary term (AuxK, pre-activation loss). With {@code backward}, {@link #df}
     * holds dLoss/dz on entry and receives this term's dz (direct, not through the activation);
     * {@link #f}, {@link #mask} and {@link #work} are free scratch. The reconstruction residual
     * x - x_hat is {@code residualScale * err}.
     */
    protected double auxiliaryLoss(boolean backward, double residualScale) {
        return 0;
    }

    /** The input batch of the current pass (for terms that reach the skip connection). */
    protected final INDArray currentInput() {
        return input;
    }

    /** Lets an architecture correct the gradients once the shared backward pass is done (gated: b_gate). */
    protected void afterBackward() {
    }

    /** Inference-time activation of pre-activations, in place (no training statistics). */
    protected abstract void inferenceActivation(INDArray preActivations);

    /** Feature activations of raw-to-the-SAE (normalized) inputs [n, d_in] -> [n, d_sae]; allocates. */
    public INDArray encode(INDArray x) {
        checkInput(x);
        INDArray pre = (transcoder ? x : x.subRowVector(bDec)).mmul(wEnc).addiRowVector(bEnc);
        inferenceActivation(pre);
        return pre;
    }

    /** Reconstruction [n, d_out] of activations [n, d_sae]; allocates. Without the skip path (see {@link #decode(INDArray, INDArray)}). */
    public INDArray decode(INDArray features) {
        return features.mmul(wDec).addiRowVector(bDec);
    }

    /** Prediction [n, d_out] from activations and the inputs [n, d_in] they came from (adds x W_skip if present). */
    public INDArray decode(INDArray features, INDArray x) {
        INDArray out = decode(features);
        return wSkip == null ? out : out.addi(x.mmul(wSkip));
    }

    /**
     * The JumpReLU threshold per feature this dictionary exports (JumpReLU: its thresholds;
     * BatchTopK: its global threshold for every feature); null for architectures without one.
     */
    public abstract INDArray exportThreshold();

    /** SAELens's architecture name for the export ("standard", "jumprelu", "topk"). */
    public abstract String exportArchitecture();

    /** Named non-parameter state a checkpoint must keep (e.g. BatchTopK's running threshold). */
    public double[] trainingState() {
        return new double[0];
    }

    public void restoreTrainingState(double[] state) {
    }

    // ---- helpers shared by the architectures ----

    protected static double squaredSum(INDArray a) {
        double n = a.norm2Number().doubleValue();
        return n * n;
    }

    /** out = (x > cutoff) ? 1 : 0. */
    protected static void step(INDArray x, INDArray out, double cutoff) {
        Nd4j.exec(new Step(x, out, cutoff));
    }

    /** out = a * b, elementwise, into a preallocated array (may be a or b). */
    protected static void multiply(INDArray a, INDArray b, INDArray out) {
        Nd4j.exec(new MulOp(a, b, out));
    }

    /** Column sums of mask: per-feature firing counts for the trainer's dead/dense tracking. */
    protected final void countFiring() {
        columnSums(mask, fireCounts);
    }

    /**
     * out[j] = sum_b m[b, j] for a [batch, n] buffer, as a ones-vector product: ND4J's
     * {@code sum(out, 0)} on a [4096, 16384] array took ~470 ms against ~25 ms for this.
     */
    protected final void columnSums(INDArray m, INDArray out) {
        ColumnSums.of(m, out);
    }

    /** Largest value of the data type strictly below v, so {@code x > below(v)} means {@code x >= v}. */
    protected final double strictlyBelow(double v) {
        return dtype == DataType.FLOAT ? Math.nextDown((float) v) : Math.nextDown(v);
    }
}
