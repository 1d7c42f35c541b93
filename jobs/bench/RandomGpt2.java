package jobs.bench;

import activations.safetensors.DType;
import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.Gpt2TokenizerJson;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * A GPT-2-shaped checkpoint with random weights (N(0, 0.02), unit norm gains), with the real GPT-2
 * tokenizer: what the throughput figures run, since speed does not depend on trained weights.
 */
final class RandomGpt2 {

    private RandomGpt2() {
    }

    static Path write(Path dir, int layers, int d, int heads, int context, Path gpt2TokenizerFiles) {
        try {
            Files.createDirectories(dir);
            int vocab = 50257;
            Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", "
                    + "\"n_embd\": " + d + ", \"n_layer\": " + layers + ", \"n_head\": " + heads + ", \"n_positions\": "
                    + Math.max(1024, context) + ", \"vocab_size\": " + vocab + ", \"layer_norm_epsilon\": 1e-5, "
                    + "\"activation_function\": \"gelu_new\", \"bos_token_id\": 50256, \"eos_token_id\": 50256}");
            SplittableRandom random = new SplittableRandom(20261122);
            SafeTensorsWriter w = new SafeTensorsWriter();
            w.add("transformer.wte.weight", DType.BF16, gaussian(random, vocab * d), vocab, d);
            w.add("transformer.wpe.weight", DType.BF16, gaussian(random, Math.max(1024, context) * d), Math.max(1024, context), d);
            for (int l = 0; l < layers; l++) {
                String p = "transformer.h." + l + ".";
                w.add(p + "ln_1.weight", DType.BF16, ones(d), d).add(p + "ln_1.bias", DType.BF16, new float[d], d);
                w.add(p + "attn.c_attn.weight", DType.BF16, gaussian(random, d * 3 * d), d, 3L * d);
                w.add(p + "attn.c_attn.bias", DType.BF16, new float[3 * d], 3L * d);
                w.add(p + "attn.c_proj.weight", DType.BF16, gaussian(random, d * d), d, d);
                w.add(p + "attn.c_proj.bias", DType.BF16, new float[d], d);
                w.add(p + "ln_2.weight", DType.BF16, ones(d), d).add(p + "ln_2.bias", DType.BF16, new float[d], d);
                w.add(p + "mlp.c_fc.weight", DType.BF16, gaussian(random, d * 4 * d), d, 4L * d);
                w.add(p + "mlp.c_fc.bias", DType.BF16, new float[4 * d], 4L * d);
                w.add(p + "mlp.c_proj.weight", DType.BF16, gaussian(random, 4 * d * d), 4L * d, d);
                w.add(p + "mlp.c_proj.bias", DType.BF16, new float[d], d);
            }
            w.add("transformer.ln_f.weight", DType.BF16, ones(d), d).add("transformer.ln_f.bias", DType.BF16, new float[d], d);
            w.write(dir.resolve("model.safetensors"));
            Gpt2TokenizerJson.writeInto(gpt2TokenizerFiles.resolve("encoder.json"), gpt2TokenizerFiles.resolve("vocab.bpe"), dir);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the benchmark model into " + dir + ": " + e.getMessage(), e);
        }
    }

    private static float[] gaussian(SplittableRandom random, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            // Box-Muller would do; a sum of uniforms is enough for weights that only need a scale.
            v[i] = (float) ((random.nextDouble() + random.nextDouble() + random.nextDouble() - 1.5) * 0.04);
        }
        return v;
    }

    private static float[] ones(int n) {
        float[] v = new float[n];
        java.util.Arrays.fill(v, 1f);
        return v;
    }
}
