package activations.model;

import activations.safetensors.SafeTensorsWriter;
import activations.tokenizer.JsonFiles;
import activations.tokenizer.Llama2cTokenizerJson;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Converts a llama2.c checkpoint ({@code .bin}, legacy v0 or the version-1 "ak42" export) and its
 * {@code tokenizer.bin} into a Hugging Face Llama directory: config.json, model.safetensors (F32),
 * tokenizer.json and tokenizer_config.json.
 *
 * <p>llama2.c rotates ADJACENT pairs (2i, 2i+1) of each head with RoPE, HF Llama rotates (i, i+d/2)
 * ("rotate_half"), so the rows of wq and wk are permuted per head as HF's
 * convert_llama_weights_to_hf does: new row j*d/2 + i takes old row 2i + j.
 */
public final class Llama2cConverter {

    private static final int MAGIC_AK42 = 0x616b3432;
    private static final int V1_HEADER_BYTES = 256;
    private static final int V0_HEADER_BYTES = 7 * 4;
    private static final double ROPE_THETA = 10000.0;
    private static final double RMS_NORM_EPS = 1e-5;

    /** The checkpoint's hyper-parameters; {@code vocabSize} is always positive here. */
    public record Header(int version, int dim, int hiddenDim, int layers, int heads, int kvHeads, int vocabSize,
                         int seqLen, boolean sharedClassifier) {
        public int headSize() {
            return dim / heads;
        }

        public int kvDim() {
            return kvHeads * headSize();
        }

        int headerBytes() {
            return version == 0 ? V0_HEADER_BYTES : V1_HEADER_BYTES;
        }

        /** fp32 values after the header, in file order. */
        long floatCount() {
            long perLayer = 2L * dim                       // attention and ffn rms weights
                    + 2L * dim * dim + 2L * kvDim() * dim  // wq, wo, wk, wv
                    + 3L * hiddenDim * dim;                // w1, w2, w3
            long count = (long) vocabSize * dim + layers * perLayer + dim;
            if (version == 0) {
                count += (long) seqLen * headSize();     // freq_cis real + imag, seq_len x head_size/2 each
            }
            if (!sharedClassifier) {
                count += (long) vocabSize * dim;
            }
            return count;
        }

        long fileBytes() {
            return headerBytes() + 4 * floatCount();
        }
    }

    private Llama2cConverter() {
    }

    public static Header readHeader(Path modelBin) {
        try (FileChannel channel = FileChannel.open(modelBin, StandardOpenOption.READ)) {
            return readHeader(modelBin, channel);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read llama2.c checkpoint " + modelBin + ": " + e.getMessage(), e);
        }
    }

    private static Header readHeader(Path file, FileChannel channel) throws IOException {
        long size = channel.size();
        if (size < V0_HEADER_BYTES) {
            throw new IllegalArgumentException(file + " is too short (" + size + " bytes) to be a llama2.c checkpoint");
        }
        ByteBuffer head = read(channel, 0, (int) Math.min(size, 40));
        Header header;
        if (head.getInt(0) == MAGIC_AK42) {
            int version = head.getInt(4);
            if (version != 1) {
                throw new IllegalArgumentException(file + " is a llama2.c version-" + version + " export; only fp32 "
                        + "checkpoints are supported: re-export with `python export.py --version 0` (or 1)");
            }
            if (size < V1_HEADER_BYTES) {
                throw new IllegalArgumentException(file + " is truncated: " + size + " bytes, shorter than the 256-byte version-1 header");
            }
            header = new Header(1, head.getInt(8), head.getInt(12), head.getInt(16), head.getInt(20), head.getInt(24),
                    head.getInt(28), head.getInt(32), head.get(36) != 0);
        } else {
            int vocab = head.getInt(20);
            // legacy v0: a negative vocab_size marks an untied classifier stored at the end
            header = new Header(0, head.getInt(0), head.getInt(4), head.getInt(8), head.getInt(12), head.getInt(16),
                    Math.abs(vocab), head.getInt(24), vocab > 0);
        }
        checkHeader(file, header);
        long expected = header.fileBytes();
        if (size < expected) {
            throw new IllegalArgumentException(file + " is truncated: " + size + " bytes, but its header (" + describe(header)
                    + ") needs " + expected);
        }
        if (size > expected) {
            throw new IllegalArgumentException(file + " has " + (size - expected) + " bytes more than its header ("
                    + describe(header) + ") describes: not a fp32 llama2.c checkpoint of that shape");
        }
        return header;
    }

    private static void checkHeader(Path file, Header h) {
        boolean positive = h.dim() > 0 && h.hiddenDim() > 0 && h.layers() > 0 && h.heads() > 0 && h.kvHeads() > 0
                && h.vocabSize() > 0 && h.seqLen() > 0;
        if (!positive || h.dim() % h.heads() != 0 || h.heads() % h.kvHeads() != 0 || h.headSize() % 2 != 0) {
            throw new IllegalArgumentException(file + " does not have a valid llama2.c header (" + describe(h)
                    + "): expected positive sizes, dim divisible by n_heads, n_heads by n_kv_heads, even head size");
        }
    }

    private static String describe(Header h) {
        return "dim=" + h.dim() + " hidden_dim=" + h.hiddenDim() + " n_layers=" + h.layers() + " n_heads=" + h.heads()
                + " n_kv_heads=" + h.kvHeads() + " vocab_size=" + h.vocabSize() + " seq_len=" + h.seqLen()
                + (h.sharedClassifier() ? " tied" : " untied");
    }

    /**
     * Converts {@code modelBin} + {@code tokenizerBin} into a new HF Llama directory {@code outDir}.
     * {@code outDir} must not exist or be empty; it appears complete or not at all.
     */
    public static Header convert(Path modelBin, Path tokenizerBin, Path outDir) {
        requireFile(modelBin, "llama2.c checkpoint (--model)");
        requireFile(tokenizerBin, "llama2.c tokenizer (--tokenizer)");
        Path target = outDir.toAbsolutePath().normalize();
        if (Files.exists(target) && !isEmptyDirectory(target)) {
            throw new IllegalArgumentException("output directory " + target + " already exists and is not empty: "
                    + "choose a new --out or remove it");
        }

        Llama2cTokenizerJson.Vocabulary vocabulary = Llama2cTokenizerJson.read(tokenizerBin);
        Path temp = target.resolveSibling("." + target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try (FileChannel channel = FileChannel.open(modelBin, StandardOpenOption.READ)) {
            Header header = readHeader(modelBin, channel);
            if (vocabulary.size() != header.vocabSize()) {
                throw new IllegalArgumentException(tokenizerBin + " has " + vocabulary.size() + " tokens but " + modelBin
                        + " has vocab_size " + header.vocabSize() + ": pass the tokenizer the model was trained with");
            }
            deleteRecursively(temp);
            Files.createDirectories(temp);
            writeWeights(modelBin, channel, header, temp.resolve("model.safetensors"));
            JsonFiles.write(temp.resolve("config.json"), config(header));
            Llama2cTokenizerJson.write(vocabulary, header.seqLen(), temp);
            if (Files.exists(target)) {
                Files.delete(target); // empty, checked above
            }
            Files.move(temp, target, StandardCopyOption.ATOMIC_MOVE);
            return header;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot convert " + modelBin + " into " + target + ": " + e.getMessage(), e);
        } finally {
            deleteRecursively(temp);
        }
    }

    /** The HF LlamaConfig of {@code header}. */
    public static Map<String, Object> config(Header h) {
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("architectures", List.of("LlamaForCausalLM"));
        config.put("model_type", "llama");
        config.put("hidden_size", h.dim());
        config.put("intermediate_size", h.hiddenDim());
        config.put("num_attention_heads", h.heads());
        config.put("num_key_value_heads", h.kvHeads());
        config.put("num_hidden_layers", h.layers());
        config.put("head_dim", h.headSize());
        config.put("vocab_size", h.vocabSize());
        config.put("max_position_embeddings", h.seqLen());
        config.put("rms_norm_eps", RMS_NORM_EPS);
        config.put("rope_theta", ROPE_THETA);
        config.put("hidden_act", "silu");
        config.put("attention_bias", false);
        config.put("mlp_bias", false);
        config.put("tie_word_embeddings", h.sharedClassifier());
        config.put("bos_token_id", Llama2cTokenizerJson.BOS_ID);
        config.put("eos_token_id", Llama2cTokenizerJson.EOS_ID);
        config.put("torch_dtype", "float32");
        return config;
    }

    /**
     * Reads the tensors in file order and hands each to the writer at once (which keeps its own
     * copy), so peak memory stays near one copy of the model.
     */
    private static void writeWeights(Path file, FileChannel channel, Header h, Path safetensors) throws IOException {
        TensorReader in = new TensorReader(file, channel, h.headerBytes());
        SafeTensorsWriter out = new SafeTensorsWriter().metadata("format", "pt");
        int dim = h.dim();
        int kvDim = h.kvDim();
        int hidden = h.hiddenDim();
        if (h.version() == 0) {
            out.addF32("model.embed_tokens.weight", in.next((long) h.vocabSize() * dim), h.vocabSize(), dim);
            perLayer(out, in, h, "input_layernorm.weight", dim);
        } else {
            // version 1 stores all norms first, then the embedding
            perLayer(out, in, h, "input_layernorm.weight", dim);
            perLayer(out, in, h, "post_attention_layernorm.weight", dim);
            out.addF32("model.norm.weight", in.next(dim), dim);
            out.addF32("model.embed_tokens.weight", in.next((long) h.vocabSize() * dim), h.vocabSize(), dim);
        }
        for (int l = 0; l < h.layers(); l++) {
            float[] wq = permuteForRotateHalf(in.next((long) dim * dim), h.heads(), h.headSize(), dim);
            out.addF32(layer(l, "self_attn.q_proj.weight"), wq, dim, dim);
        }
        for (int l = 0; l < h.layers(); l++) {
            float[] wk = permuteForRotateHalf(in.next((long) kvDim * dim), h.kvHeads(), h.headSize(), dim);
            out.addF32(layer(l, "self_attn.k_proj.weight"), wk, kvDim, dim);
        }
        perLayer(out, in, h, "self_attn.v_proj.weight", kvDim, dim);
        perLayer(out, in, h, "self_attn.o_proj.weight", dim, dim);
        if (h.version() == 0) {
            perLayer(out, in, h, "post_attention_layernorm.weight", dim);
        }
        perLayer(out, in, h, "mlp.gate_proj.weight", hidden, dim); // w1
        perLayer(out, in, h, "mlp.down_proj.weight", dim, hidden); // w2
        perLayer(out, in, h, "mlp.up_proj.weight", hidden, dim);   // w3
        if (h.version() == 0) {
            out.addF32("model.norm.weight", in.next(dim), dim);
            float[] cos = in.next((long) h.seqLen() * h.headSize() / 2);
            float[] sin = in.next((long) h.seqLen() * h.headSize() / 2);
            checkRopeTables(file, h, cos, sin);
        }
        if (!h.sharedClassifier()) {
            out.addF32("lm_head.weight", in.next((long) h.vocabSize() * dim), h.vocabSize(), dim);
        }
        out.write(safetensors);
    }

    private static void perLayer(SafeTensorsWriter out, TensorReader in, Header h, String name, long... shape)
            throws IOException {
        long count = 1;
        for (long s : shape) {
            count *= s;
        }
        for (int l = 0; l < h.layers(); l++) {
            out.addF32(layer(l, name), in.next(count), shape);
        }
    }

    private static String layer(int l, String name) {
        return "model.layers." + l + "." + name;
    }

    /**
     * Reorders the rows of a (heads*headSize) x in projection from llama2.c's adjacent-pair RoPE layout
     * to HF's rotate_half layout: within each head, new row j*headSize/2 + i = old row 2i + j
     * (HF: {@code w.view(heads, headSize/2, 2, in).transpose(1, 2).reshape(out, in)}).
     */
    public static float[] permuteForRotateHalf(float[] w, int heads, int headSize, int in) {
        if ((long) heads * headSize * in != w.length) {
            throw new IllegalArgumentException("cannot permute " + w.length + " values as " + heads + " heads x "
                    + headSize + " rows x " + in + " columns");
        }
        float[] out = new float[w.length];
        int half = headSize / 2;
        for (int head = 0; head < heads; head++) {
            int base = head * headSize;
            for (int i = 0; i < half; i++) {
                for (int j = 0; j < 2; j++) {
                    System.arraycopy(w, (base + 2 * i + j) * in, out, (base + j * half + i) * in, in);
                }
            }
        }
        return out;
    }

    /**
     * The legacy file carries llama2.c's RoPE cos/sin tables; a checkpoint trained with another theta
     * would convert silently into a wrong model, so check the tables against theta = 10000.
     */
    private static void checkRopeTables(Path file, Header h, float[] cos, float[] sin) {
        int half = h.headSize() / 2;
        for (int pos = 0; pos < h.seqLen(); pos++) {
            for (int i = 0; i < half; i++) {
                double angle = pos * Math.pow(ROPE_THETA, -2.0 * i / h.headSize());
                double error = Math.max(Math.abs(cos[pos * half + i] - Math.cos(angle)),
                        Math.abs(sin[pos * half + i] - Math.sin(angle)));
                // float32 angles at large positions carry ~1e-4 rad of rounding; a different theta is off by far more
                if (!(error < 1e-2)) {
                    throw new IllegalArgumentException(file + ": the RoPE table at position " + pos + ", pair " + i
                            + " is not llama2.c's theta=10000 (cos " + cos[pos * half + i] + " vs " + Math.cos(angle)
                            + "): the file is not a standard llama2.c checkpoint");
                }
            }
        }
    }

    /** Sequential fp32 reads from the checkpoint. */
    private static final class TensorReader {
        private final Path file;
        private final FileChannel channel;
        private long position;

        TensorReader(Path file, FileChannel channel, long start) {
            this.file = file;
            this.channel = channel;
            this.position = start;
        }

        float[] next(long count) throws IOException {
            if (count * 4 > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException(file + ": a tensor of " + count + " values is too large for this converter (2 GB per tensor)");
            }
            ByteBuffer bytes = read(channel, position, (int) (count * 4));
            position += count * 4;
            float[] values = new float[(int) count];
            bytes.asFloatBuffer().get(values);
            return values;
        }

    }

    private static ByteBuffer read(FileChannel channel, long position, int length) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate(length).order(ByteOrder.LITTLE_ENDIAN);
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position()) < 0) {
                throw new IOException("unexpected end of file at byte " + (position + buffer.position()));
            }
        }
        return buffer.flip();
    }

    private static void requireFile(Path file, String what) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no " + what + " at " + file.toAbsolutePath());
        }
    }

    private static boolean isEmptyDirectory(Path dir) {
        if (!Files.isDirectory(dir)) {
            return false;
        }
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(dir)) {
            return !entries.iterator().hasNext();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    private static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) paths.sorted(Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove temporary directory " + dir + ": " + e.getMessage(), e);
        }
    }
}
