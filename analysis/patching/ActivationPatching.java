package analysis.patching;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.TransformerModel;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Activation patching: the corrupted prompt runs with the clean run's value of one hook at one
 * (layer, position) put in, for every layer and position, and the metric {@code logit(A) -
 * logit(B)} at the last position is reported normalized, {@code (m_patched - m_corrupt) / (m_clean
 * - m_corrupt)}: 1 where that single value restores the clean behaviour, 0 where it does nothing.
 * The positions of one layer run as one batch (sequence {@code b} patched at position {@code b}).
 */
public final class ActivationPatching {

    /** The hook kinds one can patch, by their short names. */
    public static final Map<String, Kind> KINDS = Map.of(
            "resid_pre", Kind.RESID_PRE, "attn_out", Kind.ATTN_OUT, "mlp_out", Kind.MLP_OUT);

    /** {@code normalized.get(kind)[layer][position]}. */
    public record Result(double cleanMetric, double corruptMetric, Map<String, double[][]> normalized) {
    }

    private ActivationPatching() {
    }

    /** Parses {@code resid_pre,attn_out,mlp_out}-style names, refusing unknown ones in one line. */
    public static List<String> kinds(List<String> names) {
        List<String> kinds = new ArrayList<>();
        for (String n : names) {
            String k = n.trim();
            if (!KINDS.containsKey(k)) {
                throw new IllegalArgumentException("unknown hook kind '" + k + "' for patching; choose from resid_pre, attn_out, mlp_out");
            }
            if (!kinds.contains(k)) {
                kinds.add(k);
            }
        }
        if (kinds.isEmpty()) {
            throw new IllegalArgumentException("--hooks is empty; choose from resid_pre, attn_out, mlp_out");
        }
        return kinds;
    }

    public static Result run(TransformerModel model, int[] clean, int[] corrupt, int answer, int wrong, List<String> kinds) {
        return run(model, clean, corrupt, answer, wrong, kinds, positionsPerPass(model, clean.length));
    }

    /** With {@code chunk} patched positions per forward pass. */
    static Result run(TransformerModel model, int[] clean, int[] corrupt, int answer, int wrong, List<String> kinds, int chunk) {
        if (clean.length != corrupt.length) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "the clean prompt is %d tokens and the corrupted one %d; "
                    + "patching needs prompts of the same token length (reword one so the positions line up)", clean.length, corrupt.length));
        }
        int layers = model.config().nLayers();
        int seq = clean.length;
        List<HookPoint> cleanHooks = new ArrayList<>();
        for (String kind : kinds) {
            for (int l = 0; l < layers; l++) {
                cleanHooks.add(new HookPoint(KINDS.get(kind), l));
            }
        }
        ForwardResult cleanRun = model.forward(new int[][] {clean}, ForwardRequest.capture(cleanHooks));
        double mClean = metric(model.lastLogits(clean), answer, wrong);
        double mCorrupt = metric(model.lastLogits(corrupt), answer, wrong);
        double span = mClean - mCorrupt;
        if (Math.abs(span) < 1e-6) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "the clean and corrupted prompts give the same metric "
                    + "logit(A) - logit(B) = %.6f, so nothing can be normalized; choose prompts whose answers differ", mClean));
        }
        HookPoint lastResid = new HookPoint(Kind.RESID_POST, layers - 1);
        Map<String, double[][]> normalized = new LinkedHashMap<>();
        for (String kind : kinds) {
            double[][] grid = new double[layers][seq];
            for (int l = 0; l < layers; l++) {
                HookPoint hook = new HookPoint(KINDS.get(kind), l);
                float[] source = cleanRun.get(hook);
                for (int from = 0; from < seq; from += chunk) {
                    int count = Math.min(chunk, seq - from);
                    double[] m = patchedMetrics(model, corrupt, hook, source, from, count, lastResid, answer, wrong);
                    for (int b = 0; b < count; b++) {
                        grid[l][from + b] = (m[b] - mCorrupt) / span;
                    }
                }
            }
            normalized.put(kind, grid);
        }
        return new Result(mClean, mCorrupt, normalized);
    }

    /** The metric with {@code source}'s row p patched in at {@code hook}, for p in [from, from + count), one batch. */
    private static double[] patchedMetrics(TransformerModel model, int[] corrupt, HookPoint hook, float[] source, int from,
                                           int count, HookPoint lastResid, int answer, int wrong) {
        int seq = corrupt.length;
        int d = model.config().dModel();
        int[][] batch = new int[count][];
        for (int b = 0; b < count; b++) {
            batch[b] = corrupt;
        }
        Intervention patch = (h, values, n, seqLen, dim) -> {
            for (int b = 0; b < n; b++) {
                int position = from + b;
                values.put((b * seqLen + position) * dim, source, position * dim, dim);
            }
        };
        ForwardResult patched = model.forward(batch, ForwardRequest.capture(lastResid).intervene(hook, patch));
        // The model's head on each sequence's last residual only: [count, d] -> [count, vocab].
        float[] lastRows = new float[count * d];
        for (int b = 0; b < count; b++) {
            System.arraycopy(patched.row(lastResid, b, seq - 1), 0, lastRows, b * d, d);
        }
        float[] logits = model.unembed(lastRows);
        int vocab = model.config().vocabSize();
        double[] m = new double[count];
        for (int b = 0; b < count; b++) {
            m[b] = (double) logits[b * vocab + answer] - logits[b * vocab + wrong];
        }
        return m;
    }

    /** Sequences per patched pass, so one pass's buffers (attention scores dominate) stay near 256 MiB. */
    static int positionsPerPass(TransformerModel model, int seq) {
        var c = model.config();
        long floatsPerSequence = (long) c.nHeads() * seq * seq + (long) seq * (8L * c.dModel() + 3L * c.dMlp());
        return (int) Math.max(1, Math.min(seq, (64L << 20) / floatsPerSequence));
    }

    static double metric(float[] logits, int answer, int wrong) {
        return (double) logits[answer] - logits[wrong];
    }
}
