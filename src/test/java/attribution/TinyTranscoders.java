package attribution;

import activations.safetensors.SafeTensorsWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Random transcoders in circuit-tracer's layouts, JumpReLU thresholds included, written for the tests. */
public final class TinyTranscoders {

    private TinyTranscoders() {
    }

    /** A cross-layer transcoder (W_enc_i / W_dec_i files) over {@code layers} layers of width d. */
    public static Path crossLayer(Path dir, int layers, int d, int features, String inputHook, long seed) {
        Random r = new Random(seed);
        for (int i = 0; i < layers; i++) {
            new SafeTensorsWriter()
                    .addF32("W_enc_" + i, gaussian(r, features * d, 0.5), features, d)
                    .addF32("b_enc_" + i, gaussian(r, features, 0.3), features)
                    .addF32("b_dec_" + i, gaussian(r, d, 0.2), d)
                    .addF32("threshold_" + i, uniform(r, features, 0.1, 0.6), features)
                    .write(dir.resolve("W_enc_" + i + ".safetensors"));
            new SafeTensorsWriter()
                    .addF32("W_dec_" + i, gaussian(r, features * (layers - i) * d, 0.3), features, layers - i, d)
                    .write(dir.resolve("W_dec_" + i + ".safetensors"));
        }
        config(dir, "cross_layer_transcoder", inputHook, layers, d, features, "jump_relu");
        return dir;
    }

    /** A per-layer transcoder set (layer_i files) with JumpReLU thresholds and, optionally, skip connections. */
    public static Path set(Path dir, int layers, int d, int features, String inputHook, boolean skip, long seed) {
        Random r = new Random(seed);
        for (int i = 0; i < layers; i++) {
            SafeTensorsWriter w = new SafeTensorsWriter()
                    .addF32("W_enc", gaussian(r, features * d, 0.4), features, d)
                    .addF32("b_enc", gaussian(r, features, 0.3), features)
                    .addF32("W_dec", gaussian(r, features * d, 0.3), features, d)
                    .addF32("b_dec", gaussian(r, d, 0.2), d)
                    .addF32("activation_function.threshold", uniform(r, features, 0.1, 0.6), features);
            if (skip) {
                w.addF32("W_skip", gaussian(r, d * d, 0.2), d, d);
            }
            w.write(dir.resolve("layer_" + i + ".safetensors"));
        }
        config(dir, "transcoder_set", inputHook, layers, d, features, "jump_relu");
        return dir;
    }

    public static void config(Path dir, String kind, String inputHook, int layers, int d, int features, String activation) {
        String yaml = "model_kind: \"" + kind + "\"\nfeature_input_hook: \"" + inputHook + "\"\nfeature_output_hook: \"hook_mlp_out\"\n"
                + "n_layers: " + layers + "\nd_model: " + d + "\nd_transcoder: " + features + "\nactivation: \"" + activation + "\"\n";
        try {
            Files.createDirectories(dir);
            Files.writeString(dir.resolve("config.yaml"), yaml);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static float[] gaussian(Random r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (r.nextGaussian() * scale);
        }
        return v;
    }

    private static float[] uniform(Random r, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        }
        return v;
    }
}
