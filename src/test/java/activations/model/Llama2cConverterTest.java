package activations.model;

import activations.safetensors.SafeTensors;
import activations.tokenizer.TextTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Llama2cConverterTest {

    static final Path REPO = Path.of(System.getProperty("spindle.repo", "."));
    static final Path BIN = REPO.resolve("models/stories260K/stories260K.bin");
    static final Path TOK = REPO.resolve("models/stories260K/tok512.bin");

    // stories260K, from its PROVENANCE.txt
    static final int DIM = 64, HIDDEN = 172, LAYERS = 5, HEADS = 8, KV_HEADS = 4, VOCAB = 512, SEQ = 512;
    static final int HEAD = DIM / HEADS, KV_DIM = KV_HEADS * HEAD;

    @TempDir
    static Path tmp;
    static Path converted;
    /** llama2.c tensors read straight from the .bin in legacy v0 order: name -> values. */
    static Map<String, float[]> original;

    @BeforeAll
    static void convert() throws Exception {
        converted = tmp.resolve("stories260K-hf");
        Llama2cConverter.convert(BIN, TOK, converted);
        original = readLegacy(Files.readAllBytes(BIN));
    }

    static Map<String, float[]> readLegacy(byte[] file) {
        ByteBuffer in = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        int[] header = new int[7];
        for (int i = 0; i < 7; i++) {
            header[i] = in.getInt();
        }
        assertArrayEquals(new int[] {DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ}, header);
        Map<String, float[]> t = new LinkedHashMap<>();
        t.put("emb", floats(in, VOCAB * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("rms_att" + l, floats(in, DIM));
        for (int l = 0; l < LAYERS; l++) t.put("wq" + l, floats(in, DIM * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("wk" + l, floats(in, KV_DIM * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("wv" + l, floats(in, KV_DIM * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("wo" + l, floats(in, DIM * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("rms_ffn" + l, floats(in, DIM));
        for (int l = 0; l < LAYERS; l++) t.put("w1" + l, floats(in, HIDDEN * DIM));
        for (int l = 0; l < LAYERS; l++) t.put("w2" + l, floats(in, DIM * HIDDEN));
        for (int l = 0; l < LAYERS; l++) t.put("w3" + l, floats(in, HIDDEN * DIM));
        t.put("rms_final", floats(in, DIM));
        t.put("freq_cos", floats(in, SEQ * HEAD / 2));
        t.put("freq_sin", floats(in, SEQ * HEAD / 2));
        assertFalse(in.hasRemaining());
        return t;
    }

    static float[] floats(ByteBuffer in, int n) {
        float[] v = new float[n];
        in.asFloatBuffer().get(v);
        in.position(in.position() + 4 * n);
        return v;
    }

    /** Undoes the rotate_half permutation: llama2.c row h*HEAD + 2i + j is HF row h*HEAD + j*HEAD/2 + i. */
    static float[] unpermute(float[] hf, int heads) {
        float[] back = new float[hf.length];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < HEAD / 2; i++) {
                for (int j = 0; j < 2; j++) {
                    int llamaRow = h * HEAD + 2 * i + j;
                    int hfRow = h * HEAD + j * HEAD / 2 + i;
                    System.arraycopy(hf, hfRow * DIM, back, llamaRow * DIM, DIM);
                }
            }
        }
        return back;
    }

    @Test
    void configDescribesTheCheckpoint() throws Exception {
        JsonNode c = new ObjectMapper().readTree(converted.resolve("config.json").toFile());
        assertEquals("LlamaForCausalLM", c.get("architectures").get(0).asText());
        assertEquals("llama", c.get("model_type").asText());
        assertEquals(DIM, c.get("hidden_size").asInt());
        assertEquals(HIDDEN, c.get("intermediate_size").asInt());
        assertEquals(HEADS, c.get("num_attention_heads").asInt());
        assertEquals(KV_HEADS, c.get("num_key_value_heads").asInt());
        assertEquals(LAYERS, c.get("num_hidden_layers").asInt());
        assertEquals(VOCAB, c.get("vocab_size").asInt());
        assertEquals(SEQ, c.get("max_position_embeddings").asInt());
        assertEquals(1e-5, c.get("rms_norm_eps").asDouble());
        assertEquals(10000.0, c.get("rope_theta").asDouble());
        assertEquals("silu", c.get("hidden_act").asText());
        assertTrue(c.get("tie_word_embeddings").asBoolean());
        assertEquals(1, c.get("bos_token_id").asInt());
        assertEquals(2, c.get("eos_token_id").asInt());
        assertEquals("float32", c.get("torch_dtype").asText());
    }

    @Test
    void everyTensorHasItsHfNameShapeAndLlama2cValues() {
        try (SafeTensors st = SafeTensors.open(converted.resolve("model.safetensors"))) {
            Map<String, long[]> expectedShapes = new LinkedHashMap<>();
            Map<String, float[]> expectedValues = new LinkedHashMap<>();
            expectedShapes.put("model.embed_tokens.weight", new long[] {VOCAB, DIM});
            expectedValues.put("model.embed_tokens.weight", original.get("emb"));
            for (int l = 0; l < LAYERS; l++) {
                String p = "model.layers." + l + ".";
                expectedShapes.put(p + "input_layernorm.weight", new long[] {DIM});
                expectedValues.put(p + "input_layernorm.weight", original.get("rms_att" + l));
                expectedShapes.put(p + "self_attn.q_proj.weight", new long[] {DIM, DIM});
                expectedShapes.put(p + "self_attn.k_proj.weight", new long[] {KV_DIM, DIM});
                expectedShapes.put(p + "self_attn.v_proj.weight", new long[] {KV_DIM, DIM});
                expectedValues.put(p + "self_attn.v_proj.weight", original.get("wv" + l));
                expectedShapes.put(p + "self_attn.o_proj.weight", new long[] {DIM, DIM});
                expectedValues.put(p + "self_attn.o_proj.weight", original.get("wo" + l));
                expectedShapes.put(p + "post_attention_layernorm.weight", new long[] {DIM});
                expectedValues.put(p + "post_attention_layernorm.weight", original.get("rms_ffn" + l));
                expectedShapes.put(p + "mlp.gate_proj.weight", new long[] {HIDDEN, DIM});
                expectedValues.put(p + "mlp.gate_proj.weight", original.get("w1" + l));
                expectedShapes.put(p + "mlp.up_proj.weight", new long[] {HIDDEN, DIM});
                expectedValues.put(p + "mlp.up_proj.weight", original.get("w3" + l));
                expectedShapes.put(p + "mlp.down_proj.weight", new long[] {DIM, HIDDEN});
                expectedValues.put(p + "mlp.down_proj.weight", original.get("w2" + l));
            }
            expectedShapes.put("model.norm.weight", new long[] {DIM});
            expectedValues.put("model.norm.weight", original.get("rms_final"));

            assertEquals(expectedShapes.keySet(), st.tensors().keySet());
            for (Map.Entry<String, long[]> e : expectedShapes.entrySet()) {
                assertArrayEquals(e.getValue(), st.info(e.getKey()).shape(), e.getKey());
                assertEquals("F32", st.info(e.getKey()).dtype().name(), e.getKey());
            }
            for (Map.Entry<String, float[]> e : expectedValues.entrySet()) {
                assertArrayEquals(e.getValue(), st.floats(e.getKey()), e.getKey());
            }
            for (int l = 0; l < LAYERS; l++) {
                float[] q = st.floats("model.layers." + l + ".self_attn.q_proj.weight");
                float[] k = st.floats("model.layers." + l + ".self_attn.k_proj.weight");
                assertFalse(Arrays.equals(original.get("wq" + l), q), "q rows must be permuted");
                assertArrayEquals(original.get("wq" + l), unpermute(q, HEADS));
                assertArrayEquals(original.get("wk" + l), unpermute(k, KV_HEADS));
            }
        }
    }

    /**
     * The behaviour the permutation exists for: attention logits q.k with llama2.c's adjacent-pair
     * RoPE on the original weights equal those with HF's rotate_half RoPE on the converted ones.
     */
    @Test
    void attentionLogitsAgreeBetweenAdjacentPairAndRotateHalfRope() {
        Random random = new Random(7);
        float[] x = new float[DIM];
        float[] y = new float[DIM];
        for (int i = 0; i < DIM; i++) {
            x[i] = (float) random.nextGaussian();
            y[i] = (float) random.nextGaussian();
        }
        int queryPos = 37, keyPos = 11;
        try (SafeTensors st = SafeTensors.open(converted.resolve("model.safetensors"))) {
            for (int l = 0; l < LAYERS; l++) {
                double[] qLlama = ropeAdjacent(matvec(original.get("wq" + l), x), queryPos);
                double[] kLlama = ropeAdjacent(matvec(original.get("wk" + l), y), keyPos);
                double[] qHf = ropeHalf(matvec(st.floats("model.layers." + l + ".self_attn.q_proj.weight"), x), queryPos);
                double[] kHf = ropeHalf(matvec(st.floats("model.layers." + l + ".self_attn.k_proj.weight"), y), keyPos);
                for (int h = 0; h < HEADS; h++) {
                    int kv = h / (HEADS / KV_HEADS);
                    double llama = 0;
                    double hf = 0;
                    for (int d = 0; d < HEAD; d++) {
                        llama += qLlama[h * HEAD + d] * kLlama[kv * HEAD + d];
                        hf += qHf[h * HEAD + d] * kHf[kv * HEAD + d];
                    }
                    assertEquals(llama, hf, 1e-9 * (1 + Math.abs(llama)), "layer " + l + " head " + h);
                }
            }
        }
    }

    static double[] matvec(float[] w, float[] x) {
        double[] out = new double[w.length / x.length];
        for (int r = 0; r < out.length; r++) {
            for (int c = 0; c < x.length; c++) {
                out[r] += (double) w[r * x.length + c] * x[c];
            }
        }
        return out;
    }

    /** run.c: pairs (2i, 2i+1), frequency 10000^(-2i/head_size). */
    static double[] ropeAdjacent(double[] v, int pos) {
        double[] out = v.clone();
        for (int base = 0; base < v.length; base += HEAD) {
            for (int i = 0; i < HEAD / 2; i++) {
                double a = pos * Math.pow(10000, -2.0 * i / HEAD);
                double v0 = v[base + 2 * i], v1 = v[base + 2 * i + 1];
                out[base + 2 * i] = v0 * Math.cos(a) - v1 * Math.sin(a);
                out[base + 2 * i + 1] = v0 * Math.sin(a) + v1 * Math.cos(a);
            }
        }
        return out;
    }

    /** HF Llama: q*cos + rotate_half(q)*sin, pairs (i, i + head_size/2). */
    static double[] ropeHalf(double[] v, int pos) {
        double[] out = v.clone();
        int half = HEAD / 2;
        for (int base = 0; base < v.length; base += HEAD) {
            for (int i = 0; i < half; i++) {
                double a = pos * Math.pow(10000, -2.0 * i / HEAD);
                double v0 = v[base + i], v1 = v[base + i + half];
                out[base + i] = v0 * Math.cos(a) - v1 * Math.sin(a);
                out[base + i + half] = v1 * Math.cos(a) + v0 * Math.sin(a);
            }
        }
        return out;
    }

    @Test
    void convertedTokenizerGivesTheGoldenPromptIds() throws Exception {
        JsonNode golden = new ObjectMapper().readTree(REPO.resolve("models/stories260K/golden_reference.json").toFile());
        int[] expected = new int[golden.get("prompt_ids").size()];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = golden.get("prompt_ids").get(i).asInt();
        }
        try (TextTokenizer tokenizer = TextTokenizer.load(converted)) {
            assertArrayEquals(expected, tokenizer.encode(golden.get("prompt").asText(), true));
            assertEquals(VOCAB, tokenizer.vocabSize());
        }
    }

    @Test
    void version1ExportConvertsToTheSameTensors() throws Exception {
        // version1_export in llama2.c's export.py: magic, version, 7 ints, shared flag, pad to 256,
        // then all norms, embedding, wq, wk, wv, wo, w1, w2, w3 (no RoPE tables)
        ByteBuffer header = ByteBuffer.allocate(256).order(ByteOrder.LITTLE_ENDIAN);
        header.putInt(0x616b3432).putInt(1);
        for (int v : new int[] {DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, VOCAB, SEQ}) {
            header.putInt(v);
        }
        header.put((byte) 1);
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.write(header.array());
        for (String group : new String[] {"rms_att", "rms_ffn"}) {
            for (int l = 0; l < LAYERS; l++) write(file, original.get(group + l));
        }
        write(file, original.get("rms_final"));
        write(file, original.get("emb"));
        for (String group : new String[] {"wq", "wk", "wv", "wo", "w1", "w2", "w3"}) {
            for (int l = 0; l < LAYERS; l++) write(file, original.get(group + l));
        }
        Path v1 = tmp.resolve("v1.bin");
        Files.write(v1, file.toByteArray());
        Path out = tmp.resolve("v1-hf");
        Llama2cConverter.Header h = Llama2cConverter.convert(v1, TOK, out);
        assertEquals(1, h.version());
        assertSameTensors(converted.resolve("model.safetensors"), out.resolve("model.safetensors"));
    }

    @Test
    void untiedClassifierBecomesLmHead() throws Exception {
        byte[] bytes = Files.readAllBytes(BIN);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putInt(20, -VOCAB);
        float[] classifier = new float[VOCAB * DIM];
        for (int i = 0; i < classifier.length; i++) {
            classifier[i] = i * 1e-3f;
        }
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.write(bytes);
        write(file, classifier);
        Path untied = tmp.resolve("untied.bin");
        Files.write(untied, file.toByteArray());
        Path out = tmp.resolve("untied-hf");
        Llama2cConverter.convert(untied, TOK, out);

        assertFalse(new ObjectMapper().readTree(out.resolve("config.json").toFile()).get("tie_word_embeddings").asBoolean());
        try (SafeTensors st = SafeTensors.open(out.resolve("model.safetensors"))) {
            assertArrayEquals(classifier, st.floats("lm_head.weight"));
            assertArrayEquals(original.get("emb"), st.floats("model.embed_tokens.weight"));
        }
    }

    @Test
    void truncatedCheckpointIsRejectedAndNothingIsWritten() throws Exception {
        byte[] bytes = Files.readAllBytes(BIN);
        Path truncated = tmp.resolve("truncated.bin");
        Files.write(truncated, Arrays.copyOf(bytes, bytes.length - 100));
        Path out = tmp.resolve("truncated-hf");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Llama2cConverter.convert(truncated, TOK, out));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("1056440 bytes"), e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
        assertFalse(Files.exists(out));
        assertNoTempLeft();
    }

    @Test
    void otherBadInputGivesClearErrors() throws Exception {
        Path occupied = tmp.resolve("occupied");
        Files.createDirectories(occupied);
        Files.writeString(occupied.resolve("notes.txt"), "keep me");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Llama2cConverter.convert(BIN, TOK, occupied));
        assertTrue(e.getMessage().contains("not empty"), e.getMessage());
        assertEquals("keep me", Files.readString(occupied.resolve("notes.txt")));

        // tokenizer/model mismatch: the tokenizer file passed as the model, and a wrong tokenizer
        e = assertThrows(IllegalArgumentException.class, () -> Llama2cConverter.convert(TOK, TOK, tmp.resolve("x")));
        assertTrue(e.getMessage().contains("stories260K") || e.getMessage().contains("tok512"), e.getMessage());

        byte[] q80 = Arrays.copyOf(Files.readAllBytes(BIN), 4096);
        ByteBuffer.wrap(q80).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 0x616b3432).putInt(4, 2);
        Path quantized = tmp.resolve("q80.bin");
        Files.write(quantized, q80);
        e = assertThrows(IllegalArgumentException.class, () -> Llama2cConverter.convert(quantized, TOK, tmp.resolve("y")));
        assertTrue(e.getMessage().contains("version-2"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class,
                () -> Llama2cConverter.convert(tmp.resolve("missing.bin"), TOK, tmp.resolve("z")));
        assertTrue(e.getMessage().contains("no llama2.c checkpoint"), e.getMessage());
        assertNoTempLeft();
    }

    static void assertNoTempLeft() throws Exception {
        try (var files = Files.list(tmp)) {
            assertTrue(files.noneMatch(p -> p.getFileName().toString().contains(".tmp-")));
        }
    }

    static void write(ByteArrayOutputStream out, float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(values);
        out.writeBytes(b.array());
    }

    static void assertSameTensors(Path a, Path b) {
        try (SafeTensors x = SafeTensors.open(a); SafeTensors y = SafeTensors.open(b)) {
            Set<String> names = new HashSet<>(x.tensors().keySet());
            assertEquals(names, y.tensors().keySet());
            for (String name : names) {
                assertArrayEquals(x.floats(name), y.floats(name), name);
            }
        }
    }
}
