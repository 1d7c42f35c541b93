package activations.hooks;

import activations.model.ModelConfig;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A named place in the forward pass whose value can be captured or intervened on. Names follow
 * TransformerLens, which users already know: {@code blocks.{l}.hook_resid_pre} and so on. As in
 * TransformerLens, {@code ln1/ln2/ln_final.hook_normalized} is the normalized vector BEFORE the
 * norm's elementwise gain (and bias): the MLP sees {@code ln2.hook_normalized * gain}, which is
 * {@code mlp.hook_in} (circuit-tracer's name). Gemma-2's extra norms around attention and MLP
 * outputs are TransformerLens's {@code ln1_post} and {@code ln2_post}; there {@code hook_attn_out}
 * and {@code hook_mlp_out} are taken after them (what the residual stream receives). Parallel-
 * residual models (GPT-NeoX) have no {@code hook_resid_mid}.
 */
public record HookPoint(Kind kind, int layer) {

    /** Kinds in forward order; per-layer kinds have a {@code blocks.{l}.} prefix. */
    public enum Kind {
        EMBED("hook_embed", false),
        POS_EMBED("hook_pos_embed", false),
        RESID_PRE("hook_resid_pre", true),
        LN1_SCALE("ln1.hook_scale", true),
        LN1_NORMALIZED("ln1.hook_normalized", true),
        ATTN_PATTERN("attn.hook_pattern", true),
        LN1_POST_NORMALIZED("ln1_post.hook_normalized", true),
        ATTN_OUT("hook_attn_out", true),
        RESID_MID("hook_resid_mid", true),
        LN2_SCALE("ln2.hook_scale", true),
        LN2_NORMALIZED("ln2.hook_normalized", true),
        MLP_IN("mlp.hook_in", true),
        MLP_POST("mlp.hook_post", true),
        LN2_POST_NORMALIZED("ln2_post.hook_normalized", true),
        MLP_OUT("hook_mlp_out", true),
        RESID_POST("hook_resid_post", true),
        LN_FINAL_SCALE("ln_final.hook_scale", false),
        LN_FINAL_NORMALIZED("ln_final.hook_normalized", false),
        LOGITS("logits", false);

        public final String suffix;
        public final boolean perLayer;

        /**
         * What the frozen (local replacement) model fixes: norm divisors sqrt(var + eps), one per
         * row, and attention patterns {@code [batch, heads, q, k]} (rows of heads * seqLen, so
         * {@code ForwardResult.row} does not apply). Left out of {@link #all}: not activations to cache.
         */
        public boolean frozenState() {
            return this == LN1_SCALE || this == ATTN_PATTERN || this == LN2_SCALE || this == LN_FINAL_SCALE;
        }

        Kind(String suffix, boolean perLayer) {
            this.suffix = suffix;
            this.perLayer = perLayer;
        }
    }

    private static final Pattern BLOCK = Pattern.compile("blocks\\.(\\d+)\\.(.+)");

    public String name() {
        return kind.perLayer ? "blocks." + layer + "." + kind.suffix : kind.suffix;
    }

    @Override
    public String toString() {
        return name();
    }

    /** Width of this hook's vectors in the given model. */
    public int dim(ModelConfig config) {
        switch (kind) {
            case MLP_POST: return config.dMlp();
            case LN1_SCALE: case LN2_SCALE: case LN_FINAL_SCALE: return 1;
            case ATTN_PATTERN: throw new IllegalArgumentException(name() + " is [heads, q, k] per sequence, not a vector per"
                    + " position; capture it with a forward request, it cannot be cached");
            case LOGITS: return config.vocabSize();
            default: return config.dModel();
        }
    }

    /** Parses and validates a hook name against a model; unknown names list the valid ones. */
    public static HookPoint parse(String name, ModelConfig config) {
        String trimmed = name.trim();
        Matcher m = BLOCK.matcher(trimmed);
        if (m.matches()) {
            for (Kind kind : Kind.values()) {
                if (kind.perLayer && kind.suffix.equals(m.group(2)) && !available(kind, config)) {
                    throw new IllegalArgumentException("hook '" + name + "' does not exist in " + config.architecture()
                            + (kind == Kind.RESID_MID ? " with a parallel residual (attention and MLP both read hook_resid_pre)"
                            : " (it has no norm after attention and MLP)") + "; valid hooks: " + describeValid(config));
                }
                if (kind.perLayer && kind.suffix.equals(m.group(2))) {
                    int layer;
                    try {
                        layer = Integer.parseInt(m.group(1));
                    } catch (NumberFormatException e) {
                        break;
                    }
                    if (layer >= config.nLayers()) {
                        throw new IllegalArgumentException("hook '" + name + "': layer " + layer
                                + " does not exist; the model has layers 0.." + (config.nLayers() - 1));
                    }
                    return new HookPoint(kind, layer);
                }
            }
        } else {
            for (Kind kind : Kind.values()) {
                if (!kind.perLayer && kind.suffix.equals(trimmed) && available(kind, config)) {
                    return new HookPoint(kind, -1);
                }
            }
        }
        throw new IllegalArgumentException("unknown hook '" + name + "'; valid hooks: " + describeValid(config));
    }

    public static List<HookPoint> parseAll(Collection<String> names, ModelConfig config) {
        List<HookPoint> hooks = new ArrayList<>();
        for (String n : names) {
            HookPoint h = parse(n, config);
            if (!hooks.contains(h)) {
                hooks.add(h);
            }
        }
        return hooks;
    }

    /** Every hook of the model, in forward order. */
    public static List<HookPoint> all(ModelConfig config) {
        List<HookPoint> hooks = new ArrayList<>();
        for (Kind kind : Kind.values()) {
            if (!kind.perLayer && kind.ordinal() < Kind.RESID_PRE.ordinal() && available(kind, config) && !kind.frozenState()) {
                hooks.add(new HookPoint(kind, -1));
            }
        }
        for (int l = 0; l < config.nLayers(); l++) {
            for (Kind kind : Kind.values()) {
                if (kind.perLayer && available(kind, config) && !kind.frozenState()) {
                    hooks.add(new HookPoint(kind, l));
                }
            }
        }
        hooks.add(new HookPoint(Kind.LN_FINAL_NORMALIZED, -1));
        hooks.add(new HookPoint(Kind.LOGITS, -1));
        return hooks;
    }

    /** Whether the model has this kind of hook (a request for one it lacks would never fire). */
    public static boolean available(Kind kind, ModelConfig config) {
        return switch (kind) {
            case POS_EMBED -> config.family() == ModelConfig.Family.GPT2;
            case LN1_POST_NORMALIZED, LN2_POST_NORMALIZED -> config.sandwichNorms();
            case RESID_MID -> !config.parallelResidual();
            default -> true;
        };
    }

    private static String describeValid(ModelConfig config) {
        List<String> parts = new ArrayList<>();
        String layers = config.nLayers() == 1 ? "0" : "{0.." + (config.nLayers() - 1) + "}";
        for (Kind kind : Kind.values()) {
            if (!available(kind, config)) {
                continue;
            }
            parts.add(kind.perLayer ? "blocks." + layers + "." + kind.suffix : kind.suffix);
        }
        return String.join(", ", parts);
    }
}
