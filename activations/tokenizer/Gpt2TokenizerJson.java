package activations.tokenizer;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Writes a Hugging Face {@code tokenizer.json} for GPT-2's byte-level BPE from OpenAI's
 * {@code encoder.json} (piece -> id) and {@code vocab.bpe} (merges in rank order): ByteLevel
 * pre-tokenizer (GPT-2's regex, no prefix space), BPE model, ByteLevel decoder and post-processor,
 * and {@code <|endoftext|>} as the special added token. This is the same document as HF's own
 * "gpt2" tokenizer.json.
 */
public final class Gpt2TokenizerJson {

    public static final String END_OF_TEXT = "<|endoftext|>";

    private Gpt2TokenizerJson() {
    }

    /** The tokenizer.json document (a Jackson-serializable map). */
    public static Map<String, Object> tokenizerJson(Path encoderJson, Path vocabBpe) {
        Map<String, Integer> encoder = readEncoder(encoderJson);
        Integer endOfText = encoder.get(END_OF_TEXT);
        if (endOfText == null) {
            throw new IllegalArgumentException(encoderJson + " has no " + END_OF_TEXT + ": not GPT-2's encoder.json");
        }
        List<String> merges = readMerges(vocabBpe, encoder);

        Map<Integer, String> byId = new TreeMap<>();
        encoder.forEach((piece, id) -> byId.put(id, piece));
        Map<String, Object> vocab = new LinkedHashMap<>();
        byId.forEach((id, piece) -> vocab.put(piece, id));

        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        model.put("vocab", vocab);
        model.put("merges", merges);

        Map<String, Object> special = new LinkedHashMap<>();
        special.put("id", endOfText);
        special.put("content", END_OF_TEXT);
        special.put("single_word", false);
        special.put("lstrip", false);
        special.put("rstrip", false);
        special.put("normalized", true);
        special.put("special", true);

        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        root.put("added_tokens", List.of(special));
        root.put("normalizer", null);
        root.put("pre_tokenizer", byteLevel(false, true));
        root.put("post_processor", byteLevel(true, false));
        root.put("decoder", byteLevel(true, true));
        root.put("model", model);
        return root;
    }

    private static Map<String, Object> byteLevel(boolean addPrefixSpace, boolean trimOffsets) {
        Map<String, Object> byteLevel = new LinkedHashMap<>();
        byteLevel.put("type", "ByteLevel");
        byteLevel.put("add_prefix_space", addPrefixSpace);
        byteLevel.put("trim_offsets", trimOffsets);
        byteLevel.put("use_regex", true);
        return byteLevel;
    }

    /** GPT-2's tokenizer_config.json: no BOS added, {@code <|endoftext|>} is BOS, EOS and UNK. */
    public static Map<String, Object> tokenizerConfig() {
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("tokenizer_class", "GPT2TokenizerFast");
        config.put("add_bos_token", false);
        config.put("add_prefix_space", false);
        config.put("bos_token", END_OF_TEXT);
        config.put("eos_token", END_OF_TEXT);
        config.put("unk_token", END_OF_TEXT);
        config.put("clean_up_tokenization_spaces", false);
        config.put("model_max_length", 1024);
        return config;
    }

    /** Writes {@code tokenizerJsonFile} atomically. */
    public static void write(Path encoderJson, Path vocabBpe, Path tokenizerJsonFile) {
        JsonFiles.write(tokenizerJsonFile, tokenizerJson(encoderJson, vocabBpe));
    }

    /** Writes tokenizer.json and tokenizer_config.json into {@code modelDir}. */
    public static void writeInto(Path encoderJson, Path vocabBpe, Path modelDir) {
        write(encoderJson, vocabBpe, modelDir.resolve("tokenizer.json"));
        JsonFiles.write(modelDir.resolve("tokenizer_config.json"), tokenizerConfig());
    }

    private static Map<String, Integer> readEncoder(Path encoderJson) {
        if (!Files.isRegularFile(encoderJson)) {
            throw new IllegalArgumentException("no GPT-2 encoder.json at " + encoderJson.toAbsolutePath());
        }
        try {
            return new ObjectMapper().readValue(encoderJson.toFile(), new TypeReference<LinkedHashMap<String, Integer>>() { });
        } catch (IOException e) {
            throw new IllegalArgumentException(encoderJson + " is not GPT-2's encoder.json (a JSON object piece -> id): "
                    + e.getMessage().split("\n", 2)[0]);
        }
    }

    /** vocab.bpe: an optional "#version" line, then one "a b" merge per line in rank order. */
    private static List<String> readMerges(Path vocabBpe, Map<String, Integer> encoder) {
        List<String> lines;
        try {
            lines = Files.readAllLines(vocabBpe, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read GPT-2 vocab.bpe " + vocabBpe + ": " + e.getMessage(), e);
        }
        List<String> merges = new ArrayList<>(lines.size());
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isEmpty() || (i == 0 && line.startsWith("#version"))) {
                continue;
            }
            String[] pair = line.split(" ", -1);
            if (pair.length != 2 || !encoder.containsKey(pair[0]) || !encoder.containsKey(pair[1])
                    || !encoder.containsKey(pair[0] + pair[1])) {
                throw new IllegalArgumentException(vocabBpe + " line " + (i + 1) + " is not a merge of two encoder.json pieces: \""
                        + line + "\"");
            }
            merges.add(line);
        }
        return merges;
    }
}
