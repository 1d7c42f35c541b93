package jobs.cli;

import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import training.clt.SmallShapes;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `spindle train-sae` from the command line: a run's outputs, and one clear line for each bad input. */
class TrainSaeCommandTest {

    static final String HOOK = "blocks.0.hook_resid_post";
    static final String HOOK_OUT = "blocks.0.hook_mlp_out";
    static Path cache;

    @BeforeAll
    static void writeCache(@TempDir Path dir) {
        SmallShapes.singleThreaded();
        cache = dir.resolve("cache");
        Configuration conf = new Configuration();
        org.apache.hadoop.fs.Path out = new org.apache.hadoop.fs.Path(cache.toString());
        int rows = 2048;
        float[] values = new float[rows * 8];
        float[] outputs = new float[rows * 8];
        Random random = new Random(1);
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) random.nextGaussian();
            outputs[i] = 0.5f * values[i] + 0.1f * (float) random.nextGaussian();
        }
        try (ActivationShardWriter w = ActivationShardWriter.open(conf, new org.apache.hadoop.fs.Path(out,
                ActivationShardWriter.shardFileName(0)), List.of(HOOK, HOOK_OUT), new int[] {8, 8}, DType.F32)) {
            w.writeRows(new long[rows], new int[rows], new int[rows], new float[][] {values, outputs}, rows);
            w.commit();
        }
        ActivationManifest.of("test", null, 0, null, null, null, ActivationManifest.listCommittedShards(conf, out))
                .write(localFs(conf), out);
    }

    @AfterAll
    static void restore() {
        SmallShapes.restore();
    }

    static FileSystem localFs(Configuration conf) {
        try {
            return FileSystem.getLocal(conf);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** train-sae on the test cache; {@code overrides} are option/value pairs that replace the defaults here. */
    static CliRun train(Path out, String... overrides) {
        java.util.Map<String, String> options = new java.util.LinkedHashMap<>();
        options.put("--activations", cache.toString());
        options.put("--hook", HOOK);
        options.put("--arch", "relu");
        options.put("--d-sae", "16");
        options.put("--batch-tokens", "128");
        options.put("--tokens", "1280");
        options.put("--out", out.toString());
        List<String> settings = new java.util.ArrayList<>(List.of("checkpoint-every=5", "metrics-every=5",
                "normalization-batches=1"));
        for (int i = 0; i < overrides.length; i += 2) {
            if (overrides[i].equals("--set")) {
                settings.add(overrides[i + 1]);
            } else {
                options.put(overrides[i], overrides[i + 1]);
            }
        }
        List<String> args = new java.util.ArrayList<>(List.of("train-sae"));
        options.forEach((k, v) -> {
            args.add(k);
            args.add(v);
        });
        for (String setting : settings) {
            args.add("--set");
            args.add(setting);
        }
        return CliRun.spindle(args.toArray(new String[0]));
    }

    @Test
    void writesASaeLensDirectoryWithMetricsConfigAndCheckpoints(@TempDir Path dir) {
        Path out = dir.resolve("sae");
        CliRun run = train(out);
        assertEquals(0, run.exitCode(), run.err());
        for (String file : List.of("cfg.json", "sae_weights.safetensors", "sparsity.safetensors", "metrics.jsonl",
                "train_config.conf", "checkpoints")) {
            assertTrue(Files.exists(out.resolve(file)), file);
        }
        assertTrue(run.out().contains("[########################] 100%"), "progress bar: " + run.out());
        CliRun again = train(out);
        assertEquals(2, again.exitCode());
        assertTrue(again.err().contains("already holds"), again.err());
    }

    @Test
    void trainsAPerLayerTranscoderInTheSaeLensTranscoderLayout(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("plt");
        CliRun run = train(out, "--hook-out", HOOK_OUT, "--set", "skip-connection=true");
        assertEquals(0, run.exitCode(), run.err());
        var cfg = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.resolve("cfg.json").toFile());
        assertEquals(8, cfg.get("d_out").asInt());
        assertEquals(false, cfg.get("apply_b_dec_to_input").asBoolean());
        assertEquals(HOOK_OUT, cfg.get("metadata").get("hook_name_out").asText());
        try (var weights = activations.safetensors.SafeTensors.open(out.resolve("sae_weights.safetensors"))) {
            assertTrue(weights.contains("W_skip"), "skip connection exported");
        }
        assertError(train(dir.resolve("x"), "--hook-out", "blocks.0.hook_attn_out"), "hook-out 'blocks.0.hook_attn_out'",
                "it holds");
    }

    @Test
    void badInputIsOneLineWithTheFix(@TempDir Path dir) {
        assertError(train(dir.resolve("a"), "--hook", "blocks.3.hook_resid_post"),
                "is not in the activation cache", "it holds " + HOOK + ", " + HOOK_OUT);
        assertError(train(dir.resolve("b"), "--d-sae", "0"), "d_sae is 0");
        assertError(train(dir.resolve("c"), "--arch", "topk", "--k", "100"), "k is 100 but d_sae is 16");
        assertError(train(dir.resolve("d"), "--set", "sparsity-coef=1"), "unknown key 'sparsity-coef'",
                "did you mean 'sparsity-coeff'?");
        assertError(train(dir.resolve("e"), "--set", "lr=fast"), "lr");
        assertError(CliRun.spindle("train-sae", "--activations", dir.resolve("nowhere").toString(), "--hook", HOOK,
                "--out", dir.resolve("f").toString()), "does not exist");
        assertTrue(!Files.exists(dir.resolve("b")) && !Files.exists(dir.resolve("c")), "nothing written for bad settings");
    }

    private static void assertError(CliRun run, String... parts) {
        assertEquals(2, run.exitCode(), run.out() + run.err());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        for (String part : parts) {
            assertTrue(run.err().contains(part), run.err());
        }
    }
}
