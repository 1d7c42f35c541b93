package analysis.steering;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.hooks.HookPoint.Kind;
import activations.hooks.Intervention;
import activations.model.KvCache;
import activations.model.TransformerModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Autoregressive generation on a key/value cache: the prompt runs once, then each new token costs
 * one position's forward pass. Optional interventions (a steering vector) apply to every position
 * the model runs, prompt and generated alike. Greedy at temperature 0, else sampling from
 * {@code softmax(logits / temperature)} with a seeded generator, so a run is reproducible.
 */
public final class CachedGeneration {

    /** The generated ids (the prompt excluded) and, when kept, each step's next-token logits. */
    public record Generated(int[] ids, List<float[]> stepLogits) {
    }

    public record Settings(int maxNewTokens, double temperature, long seed, int stopId) {
        public Settings {
            if (maxNewTokens < 0) {
                throw new IllegalArgumentException("--max-new-tokens must be at least 0, not " + maxNewTokens);
            }
            if (!(temperature >= 0) || Double.isInfinite(temperature)) {
                throw new IllegalArgumentException("--temperature must be a finite number >= 0, not " + temperature);
            }
        }
    }

    private static final HookPoint LOGITS = new HookPoint(Kind.LOGITS, -1);

    private CachedGeneration() {
    }

    /** A request for the logits with {@code intervention} (may be null) at {@code hook}. */
    public static ForwardRequest request(HookPoint hook, Intervention intervention) {
        ForwardRequest r = ForwardRequest.capture(LOGITS);
        return intervention == null ? r : r.intervene(hook, intervention);
    }

    /**
     * Generates up to {@code maxNewTokens} tokens, stopping after {@code stopId} (negative: never) or
     * at the model's context. {@code request} must capture the logits; it is reused for every pass.
     */
    public static Generated generate(TransformerModel model, int[] prompt, ForwardRequest request, Settings s,
                                     boolean keepLogits) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt has no tokens");
        }
        if (!request.captured().contains(LOGITS)) {
            throw new IllegalArgumentException("a generation request must capture the logits");
        }
        KvCache cache = new KvCache(model.config());
        SplittableRandom random = new SplittableRandom(s.seed());
        List<float[]> logits = new ArrayList<>();
        int[] ids = new int[0];
        int[] next = prompt;
        while (ids.length < s.maxNewTokens() && cache.length() + next.length <= model.config().maxPositions()) {
            float[] last = model.forwardCached(next, cache, request).row(LOGITS, 0, next.length - 1);
            if (keepLogits) {
                logits.add(last);
            }
            int token = s.temperature() == 0 ? TransformerModel.argmax(last) : sample(last, s.temperature(), random);
            ids = Arrays.copyOf(ids, ids.length + 1);
            ids[ids.length - 1] = token;
            if (token == s.stopId()) {
                break;
            }
            next = new int[] {token};
        }
        return new Generated(ids, logits);
    }

    static int sample(float[] logits, double temperature, SplittableRandom random) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] weights = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < logits.length; i++) {
            weights[i] = Math.exp((logits[i] - max) / temperature);
            sum += weights[i];
        }
        double u = random.nextDouble() * sum;
        for (int i = 0; i < weights.length; i++) {
            u -= weights[i];
            if (u <= 0) {
                return i;
            }
        }
        return TransformerModel.argmax(logits);
    }
}
