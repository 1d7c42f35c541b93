package activations.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.TokenizerConfig;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;
import java.util.OptionalInt;

/**
 * A model's tokenizer, read from the local {@code tokenizer.json} of a model directory and run by the
 * Hugging Face tokenizers library (through DJL). Never touches a hub.
 *
 * <p>Encoding follows {@code tokenizer.json} exactly (normalizer, pre-tokenizer, model,
 * post-processor). DJL's own Java-side reinterpretation of {@code tokenizer_config.json} (accent
 * stripping, prefix space, space clean-up on decode) is deliberately not used: the only thing taken
 * from {@code tokenizer_config.json} is {@code add_bos_token} and the names of BOS/EOS.
 *
 * <p>Thread-safe: all state is immutable after {@link #load}, and the native tokenizer's encode and
 * decode only read it, so Spark tasks may share one instance.
 */
public final class TextTokenizer implements AutoCloseable {

    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path directory;
    private final HuggingFaceTokenizer tokenizer;
    private final String[] pieces;
    private final BitSet special;
    private final OptionalInt bos;
    private final OptionalInt eos;
    private final boolean configAddsBos;

    private TextTokenizer(Path directory, HuggingFaceTokenizer tokenizer, String[] pieces, BitSet special,
                          OptionalInt bos, OptionalInt eos, boolean configAddsBos) {
        this.directory = directory;
        this.tokenizer = tokenizer;
        this.pieces = pieces;
        this.special = special;
        this.bos = bos;
        this.eos = eos;
        this.configAddsBos = configAddsBos;
    }

    /** Loads {@code modelDir/tokenizer.json} (plus the optional tokenizer_config.json, special_tokens_map.json, config.json). */
    public static TextTokenizer load(Path modelDir) {
        Path file = modelDir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no tokenizer.json in " + modelDir.toAbsolutePath()
                    + ": a model directory needs a Hugging Face tokenizer.json (for a llama2.c model run "
                    + "`spindle convert-llama2c` first)");
        }
        JsonNode tokenizerJson = readJson(file);
        JsonNode tokenizerConfig = readOptionalJson(modelDir.resolve("tokenizer_config.json"));
        JsonNode specialTokensMap = readOptionalJson(modelDir.resolve("special_tokens_map.json"));
        JsonNode modelConfig = readOptionalJson(modelDir.resolve("config.json"));

        Map<String, Integer> ids = new HashMap<>();
        BitSet special = new BitSet();
        String[] pieces = readPieces(file, tokenizerJson, ids, special);

        OptionalInt bos = specialId("bos", tokenizerConfig, specialTokensMap, modelConfig, ids);
        OptionalInt eos = specialId("eos", tokenizerConfig, specialTokensMap, modelConfig, ids);
        bos.ifPresent(special::set);
        eos.ifPresent(special::set);
        boolean configAddsBos = tokenizerConfig != null && tokenizerConfig.path("add_bos_token").asBoolean(false);

        return new TextTokenizer(modelDir, build(file), pieces, special, bos, eos, configAddsBos);
    }

    private static HuggingFaceTokenizer build(Path file) {
        // DJL phones home on its first build unless "offline" is set.
        System.setProperty("offline", "true");
        Map<String, String> options = new HashMap<>();
        // DJL's defaults truncate every text to 512 tokens and pad batches.
        options.put("truncation", "false");
        options.put("padding", "false");
        options.put("addSpecialTokens", "true");
        try (InputStream in = Files.newInputStream(file)) {
            // An empty TokenizerConfig keeps DJL's Java-side text rewriting off (see class comment).
            return HuggingFaceTokenizer.newInstance(in, options, new TokenizerConfig());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot parse " + file + " as a Hugging Face tokenizer: "
                    + firstLine(e.getMessage()), e);
        }
    }

    /**
     * Token ids of {@code text}. With {@code addBos} the model's special tokens are added as its
     * tokenizer config says (tokenizer.json's post-processor, plus a BOS when tokenizer_config.json
     * has {@code add_bos_token: true} and the post-processor did not add one); without it no special
     * token is added.
     */
    public int[] encode(String text, boolean addBos) {
        if (text == null || text.isEmpty()) {
            throw new IllegalArgumentException("cannot tokenize an empty text: skip empty documents before tokenizing");
        }
        long[] raw = tokenizer.encode(text, addBos, false).getIds();
        boolean prependBos = addBos && configAddsBos && bos.isPresent()
                && (raw.length == 0 || raw[0] != bos.getAsInt());
        int offset = prependBos ? 1 : 0;
        int[] ids = new int[raw.length + offset];
        if (prependBos) {
            ids[0] = bos.getAsInt();
        }
        for (int i = 0; i < raw.length; i++) {
            ids[i + offset] = (int) raw[i];
        }
        return ids;
    }

    /** Text of {@code ids}, special tokens included, through tokenizer.json's decoder. */
    public String decode(int[] ids) {
        return decode(ids, false);
    }

    public String decode(int[] ids, boolean skipSpecialTokens) {
        long[] raw = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            checkId(ids[i]);
            raw[i] = ids[i];
        }
        return tokenizer.decode(raw, skipSpecialTokens);
    }

    /** The raw vocabulary piece of {@code id} as tokenizer.json spells it (e.g. "▁the", "Ġthe", "<0x0A>"). */
    public String piece(int id) {
        checkId(id);
        String piece = pieces[id];
        if (piece == null) {
            throw new IllegalArgumentException("token id " + id + " has no piece in " + directory.resolve("tokenizer.json"));
        }
        return piece;
    }

    /** Number of ids, added tokens included (highest id + 1). */
    public int vocabSize() {
        return pieces.length;
    }

    public OptionalInt bosId() {
        return bos;
    }

    public OptionalInt eosId() {
        return eos;
    }

    /** True for tokenizer.json's special added tokens and for BOS/EOS. */
    public boolean isSpecial(int id) {
        return id >= 0 && special.get(id);
    }

    public Path directory() {
        return directory;
    }

    @Override
    public void close() {
        tokenizer.close();
    }

    private void checkId(int id) {
        if (id < 0 || id >= pieces.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary [0, " + pieces.length
                    + ") of " + directory.resolve("tokenizer.json"));
        }
    }

    /** id -> piece from model.vocab (object for BPE/WordPiece, [piece, score] list for Unigram) and added_tokens. */
    private static String[] readPieces(Path file, JsonNode root, Map<String, Integer> ids, BitSet special) {
        JsonNode vocab = root.path("model").path("vocab");
        if (vocab.isObject()) {
            for (Map.Entry<String, JsonNode> entry : vocab.properties()) {
                ids.put(entry.getKey(), entry.getValue().asInt());
            }
        } else if (vocab.isArray()) {
            for (int id = 0; id < vocab.size(); id++) {
                ids.put(vocab.get(id).path(0).asText(), id);
            }
        } else {
            throw new IllegalArgumentException(file + " has no model.vocab: not a Hugging Face tokenizer.json");
        }
        for (JsonNode added : root.path("added_tokens")) {
            int id = added.path("id").asInt();
            ids.put(added.path("content").asText(), id);
            if (added.path("special").asBoolean(false)) {
                special.set(id);
            }
        }
        int size = 0;
        for (int id : ids.values()) {
            if (id < 0) {
                throw new IllegalArgumentException(file + " has a negative token id " + id);
            }
            size = Math.max(size, id + 1);
        }
        String[] pieces = new String[size];
        for (Map.Entry<String, Integer> entry : ids.entrySet()) {
            pieces[entry.getValue()] = entry.getKey();
        }
        return pieces;
    }

    /** BOS/EOS id: tokenizer_config.json, then special_tokens_map.json (by name), then config.json (by id). */
    private static OptionalInt specialId(String kind, JsonNode tokenizerConfig, JsonNode specialTokensMap,
                                         JsonNode modelConfig, Map<String, Integer> ids) {
        for (JsonNode source : new JsonNode[] {tokenizerConfig, specialTokensMap}) {
            if (source == null) {
                continue;
            }
            JsonNode token = source.path(kind + "_token");
            String name = token.isTextual() ? token.asText() : token.path("content").asText(null);
            if (name != null && ids.containsKey(name)) {
                return OptionalInt.of(ids.get(name));
            }
        }
        if (modelConfig != null) {
            JsonNode id = modelConfig.path(kind + "_token_id");
            if (id.isArray()) {
                id = id.path(0);
            }
            if (id.isInt()) {
                return OptionalInt.of(id.asInt());
            }
        }
        return OptionalInt.empty();
    }

    private static JsonNode readOptionalJson(Path file) {
        return Files.isRegularFile(file) ? readJson(file) : null;
    }

    private static JsonNode readJson(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot parse " + file + " as JSON: " + firstLine(e.getMessage()));
        }
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "(no message)";
        }
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
    }
}
