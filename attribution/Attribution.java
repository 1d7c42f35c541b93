package attribution;

import activations.model.TransformerModel;
import attribution.FrozenBackward.Gradients;
import attribution.FrozenBackward.Seed;
import attribution.LocalReplacementModel.Feature;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.export.CircuitTracerDictionary;

import java.util.ArrayList;
import java.util.List;

/**
 * Computes the unpruned attribution graph of one prompt: the local replacement model, the logit
 * targets, and one batched backward pass per {@code batchSize} targets (every active feature's
 * pre-activation and every logit target), contracted with each source's vector (an active
 * feature's activation times its decoder rows into every later layer, an error vector, a token
 * embedding).
 */
public final class Attribution {

    /** Logit targets: the most probable tokens covering {@code logitMass}, at most {@code maxLogits}. */
    public record Options(int maxLogits, double logitMass, int batchSize) implements java.io.Serializable {
        public static final Options DEFAULTS = new Options(10, 0.95, 256);

        public Options {
            if (maxLogits < 1) {
                throw new IllegalArgumentException("--max-logits must be at least 1");
            }
            if (!(logitMass > 0 && logitMass <= 1)) {
                throw new IllegalArgumentException("--logit-mass must be in (0, 1], got " + logitMass);
            }
            if (batchSize < 1) {
                throw new IllegalArgumentException("--batch-size must be at least 1");
            }
        }
    }

    /** Largest graph held densely: n^2 floats must index as an int. */
    static final int MAX_NODES = 46_000;

    private Attribution() {
    }

    public static AttributionGraph attribute(TransformerModel model, CircuitTracerDictionary transcoder, int[] tokens,
                                             boolean firstIsSpecial, Options options) {
        return attribute(new LocalReplacementModel(model, transcoder, tokens, firstIsSpecial), options);
    }

    public static AttributionGraph attribute(LocalReplacementModel m, Options options) {
        List<Feature> features = m.features;
        int t = m.positions;
        int layers = m.layers;
        int d = m.d;
        int[] logitTokens = LogitTargets.select(m.lastLogits, options.maxLogits(), options.logitMass());
        double[] logitProbabilities = LogitTargets.probabilities(m.lastLogits, logitTokens);
        int nFeatures = features.size();
        int errorStart = nFeatures;
        int tokenStart = errorStart + layers * t;
        int logitStart = tokenStart + t;
        int n = logitStart + logitTokens.length;
        // Dense n x n floats, about six copies at once while pruning and scoring.
        double needGiB = 6.0 * 4 * n * (double) n / (1L << 30);
        double haveGiB = Runtime.getRuntime().maxMemory() / (double) (1L << 30);
        if (n > MAX_NODES || needGiB > haveGiB) {
            throw new IllegalArgumentException(String.format(java.util.Locale.ROOT, "the prompt's graph has %d nodes (%d active features), "
                    + "needing about %.1f GiB of the %.1f GiB heap; shorten the prompt or give the JVM more memory", n, nFeatures, needGiB, haveGiB));
        }
        float[] adjacency = new float[n * n];

        // Source vectors per (output layer, position): activation-scaled decoder rows of every active
        // feature at that position whose decoder writes to that layer.
        int[][][] sources = new int[layers][t][];
        INDArray[][] decoders = new INDArray[layers][t];
        List<List<Integer>> byPosition = new ArrayList<>();
        for (int p = 0; p < t; p++) {
            byPosition.add(new ArrayList<>());
        }
        for (int i = 0; i < nFeatures; i++) {
            byPosition.get(features.get(i).position()).add(i);
        }
        for (int out = 0; out < layers; out++) {
            for (int p = 0; p < t; p++) {
                List<Integer> at = new ArrayList<>();
                for (int i : byPosition.get(p)) {
                    Feature f = features.get(i);
                    if (f.layer() <= out && m.transcoder.wDec(f.layer(), out) != null) {
                        at.add(i);
                    }
                }
                if (at.isEmpty()) {
                    continue;
                }
                sources[out][p] = at.stream().mapToInt(Integer::intValue).toArray();
                INDArray rows = Nd4j.create(DataType.FLOAT, at.size(), d);
                for (int k = 0; k < at.size(); k++) {
                    Feature f = features.get(at.get(k));
                    rows.getRow(k).assign(m.transcoder.wDec(f.layer(), out).getRow(f.feature()).mul(f.activation()));
                }
                decoders[out][p] = rows;
            }
        }
        INDArray[] errors = new INDArray[layers];
        for (int l = 0; l < layers; l++) {
            errors[l] = m.errors[l].castTo(DataType.FLOAT).reshape(t, d, 1).dup('c');
        }
        INDArray embedding = Nd4j.create(DataType.FLOAT, t, d);
        for (int p = 0; p < t; p++) {
            embedding.getRow(p).assign(m.model.tokenEmbedding().getRow(m.tokens[p]));
        }
        INDArray embeddings = embedding.reshape(t, d, 1).dup('c');

        // Targets: every active feature's pre-activation, then the logits against the mean logit.
        List<Seed> targets = new ArrayList<>();
        List<Integer> rowsOf = new ArrayList<>();
        for (int i = 0; i < nFeatures; i++) {
            Feature f = features.get(i);
            targets.add(new Seed(f.layer(), f.position(), m.transcoder.encoder(f.layer()).getColumn(f.feature()).toFloatVector()));
            rowsOf.add(i);
        }
        INDArray unembedding = m.model.unembedding();
        INDArray meanRow = unembedding.mean(0).reshape(d);
        for (int k = 0; k < logitTokens.length; k++) {
            targets.add(new Seed(layers, t - 1, unembedding.getRow(logitTokens[k]).reshape(d).sub(meanRow).toFloatVector()));
            rowsOf.add(logitStart + k);
        }

        FrozenBackward backward = new FrozenBackward(m);
        for (int from = 0; from < targets.size(); from += options.batchSize()) {
            List<Seed> batch = targets.subList(from, Math.min(targets.size(), from + options.batchSize()));
            int b = batch.size();
            int[] targetRows = rowsOf.subList(from, from + b).stream().mapToInt(Integer::intValue).toArray();
            Gradients g = backward.run(batch);
            for (int out = 0; out < layers; out++) {
                INDArray gradients = g.mlpOutput()[out].reshape(b, t, d).permute(1, 0, 2).dup('c'); // [T, B, d]
                for (int p = 0; p < t; p++) {
                    if (decoders[out][p] == null) {
                        continue;
                    }
                    float[] effects = gradients.slice(p).mmul(decoders[out][p].transpose()).dup('c').data().asFloat();
                    int[] src = sources[out][p];
                    for (int bi = 0; bi < b; bi++) {
                        int base = targetRows[bi] * n;
                        for (int k = 0; k < src.length; k++) {
                            adjacency[base + src[k]] += effects[bi * src.length + k];
                        }
                    }
                }
                scatterPerPosition(Nd4j.matmul(gradients, errors[out]), targetRows, n, errorStart + out * t, adjacency);
            }
            INDArray embedByPosition = g.embedding().reshape(b, t, d).permute(1, 0, 2).dup('c');
            scatterPerPosition(Nd4j.matmul(embedByPosition, embeddings), targetRows, n, tokenStart, adjacency);
        }
        return new AttributionGraph(m.tokens.clone(), List.copyOf(features), layers, logitTokens, logitProbabilities, adjacency,
                m.zeroFirst);
    }

    /** {@code perPosition} [T, B, 1] into columns {@code firstColumn + p} of the target rows. */
    private static void scatterPerPosition(INDArray perPosition, int[] targetRows, int n, int firstColumn, float[] adjacency) {
        float[] v = perPosition.dup('c').data().asFloat();
        int b = targetRows.length;
        int t = v.length / b;
        for (int p = 0; p < t; p++) {
            for (int bi = 0; bi < b; bi++) {
                adjacency[targetRows[bi] * n + firstColumn + p] += v[p * b + bi];
            }
        }
    }

}
