package activations.tokenizer;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns a llama2.c tokenizer ({@code tokenizer.bin}, {@code tok512.bin}: int32 max_token_length,
 * then per token float32 score, int32 length, UTF-8 bytes) into a Hugging Face {@code tokenizer.json}
 * that encodes exactly as llama2.c's {@code encode()} in run.c: BOS, a dummy-prefix space, each
 * UTF-8 character looked up in the vocabulary with byte fallback (byte b -> id b+3), then repeated
 * merging of the adjacent pair whose concatenation is the vocabulary piece with the highest score.
 *
 * <p>The HF form: a BPE model with byte fallback whose merges are every split (a, b) of every piece
 * t with a and b in the vocabulary, ranked by score(t) descending. HF's BPE always applies the
 * lowest-ranked merge present (leftmost on ties), which is llama2.c's "highest-scoring pair,
 * leftmost on ties" as long as pieces have distinct scores (sentencepiece BPE scores are).
 * Normalizer Prepend("▁") + Replace(" ", "▁") gives the dummy prefix; the post-processor adds BOS.
 *
 * <p>Known difference: like every HF Llama tokenizer, a literal "&lt;s&gt;", "&lt;/s&gt;" or
 * "&lt;unk&gt;" in the text becomes the special token, where llama2.c would spell it out.
 */
public final class Llama2cTokenizerJson {

    /** llama2.c (sentencepiece) layout: 0 unk, 1 BOS, 2 EOS, then the 256 byte pieces. */
    public static final int UNK_ID = 0;
    public static final int BOS_ID = 1;
    public static final int EOS_ID = 2;
    public static final int FIRST_BYTE_ID = 3;
    private static final int FIRST_NORMAL_ID = FIRST_BYTE_ID + 256;

    private static final String[] LLAMA2C_SPECIALS = {"<unk>", "\n<s>\n", "\n</s>\n"};
    private static final String[] HF_SPECIALS = {"<unk>", "<s>", "</s>"};
    private static final String SPACE_MARK = "\u2581";

    /** A llama2.c vocabulary as stored: pieces use a plain space where sentencepiece has "▁". */
    public record Vocabulary(String[] pieces, float[] scores, int maxTokenLength) {
        public int size() {
            return pieces.length;
        }
    }

    private Llama2cTokenizerJson() {
    }

    public static Vocabulary read(Path tokenizerBin) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(tokenizerBin);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read llama2.c tokenizer " + tokenizerBin + ": " + e.getMessage(), e);
        }
        ByteBuffer in = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (in.remaining() < 4) {
            throw new IllegalArgumentException(tokenizerBin + " is not a llama2.c tokenizer (" + bytes.length + " bytes)");
        }
        int maxTokenLength = in.getInt();
        List<String> pieces = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        var utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT);
        while (in.hasRemaining()) {
            int id = pieces.size();
            if (in.remaining() < 8) {
                throw truncated(tokenizerBin, id);
            }
            float score = in.getFloat();
            int length = in.getInt();
            if (length < 0 || length > in.remaining()) {
                throw truncated(tokenizerBin, id);
            }
            ByteBuffer piece = in.slice().limit(length);
            in.position(in.position() + length);
            try {
                pieces.add(utf8.decode(piece).toString());
            } catch (CharacterCodingException e) {
                throw new IllegalArgumentException(tokenizerBin + ": token " + id + " is not valid UTF-8");
            }
            scores.add(score);
        }
        float[] scoreArray = new float[scores.size()];
        for (int i = 0; i < scoreArray.length; i++) {
            scoreArray[i] = scores.get(i);
        }
        Vocabulary vocabulary = new Vocabulary(pieces.toArray(new String[0]), scoreArray, maxTokenLength);
        checkLayout(tokenizerBin, vocabulary);
        return vocabulary;
    }

    private static IllegalArgumentException truncated(Path file, int id) {
        return new IllegalArgumentException(file + " is truncated or not a llama2.c tokenizer: token " + id
                + " runs past the end of the file");
    }

    private static void checkLayout(Path file, Vocabulary vocabulary) {
        if (vocabulary.size() < FIRST_NORMAL_ID) {
            throw new IllegalArgumentException(file + " has " + vocabulary.size() + " tokens; a llama2.c tokenizer has at least "
                    + FIRST_NORMAL_ID + " (unk, BOS, EOS, 256 byte pieces)");
        }
        for (int id = 0; id < FIRST_BYTE_ID; id++) {
            if (!LLAMA2C_SPECIALS[id].equals(vocabulary.pieces()[id])) {
                throw new IllegalArgumentException(file + ": token " + id + " is " + quote(vocabulary.pieces()[id])
                        + ", expected " + quote(LLAMA2C_SPECIALS[id]) + " (llama2.c layout: unk, BOS, EOS, bytes)");
            }
        }
        for (int b = 0; b < 256; b++) {
            String expected = bytePiece(b);
            if (!expected.equals(vocabulary.pieces()[FIRST_BYTE_ID + b])) {
                throw new IllegalArgumentException(file + ": token " + (FIRST_BYTE_ID + b) + " is "
                        + quote(vocabulary.pieces()[FIRST_BYTE_ID + b]) + ", expected byte piece " + expected
                        + " (llama2.c's byte fallback needs byte b at id b+3)");
            }
        }
    }

    /**
     * The tokenizer.json document (a Jackson-serializable map) for {@code vocabulary}.
     */
    public static Map<String, Object> tokenizerJson(Vocabulary vocabulary) {
        int n = vocabulary.size();
        String[] names = new String[n];
        Map<String, Integer> ids = new HashMap<>();
        for (int id = 0; id < n; id++) {
            names[id] = id < FIRST_BYTE_ID ? HF_SPECIALS[id] : vocabulary.pieces()[id].replace(" ", SPACE_MARK);
            Integer previous = ids.put(names[id], id);
            if (previous != null) {
                throw new IllegalArgumentException("llama2.c tokenizer has the piece " + quote(names[id])
                        + " twice (ids " + previous + " and " + id + ")");
            }
        }

        Map<String, Object> vocab = new LinkedHashMap<>();
        for (int id = 0; id < n; id++) {
            vocab.put(names[id], id);
        }

        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", HF_SPECIALS[UNK_ID]);
        model.put("continuing_subword_prefix", null);
        model.put("end_of_word_suffix", null);
        model.put("fuse_unk", true);
        model.put("byte_fallback", true);
        model.put("ignore_merges", false);
        model.put("vocab", vocab);
        model.put("merges", merges(vocabulary, names, ids));

        List<Object> addedTokens = new ArrayList<>();
        for (int id = 0; id < FIRST_BYTE_ID; id++) {
            Map<String, Object> token = new LinkedHashMap<>();
            token.put("id", id);
            token.put("content", HF_SPECIALS[id]);
            token.put("single_word", false);
            token.put("lstrip", false);
            token.put("rstrip", false);
            token.put("normalized", false);
            token.put("special", true);
            addedTokens.add(token);
        }

        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        root.put("added_tokens", addedTokens);
        root.put("normalizer", Map.of("type", "Sequence", "normalizers", List.of(
                Map.of("type", "Prepend", "prepend", SPACE_MARK),
                Map.of("type", "Replace", "pattern", Map.of("String", " "), "content", SPACE_MARK))));
        root.put("pre_tokenizer", null);
        root.put("post_processor", bosTemplate());
        root.put("decoder", Map.of("type", "Sequence", "decoders", List.of(
                Map.of("type", "Replace", "pattern", Map.of("String", SPACE_MARK), "content", " "),
                Map.of("type", "ByteFallback"),
                Map.of("type", "Fuse"),
                Map.of("type", "Strip", "content", " ", "start", 1, "stop", 0))));
        root.put("model", model);
        return root;
    }

    /**
     * Every split (a, b) of every non-special piece t with a and b non-special pieces, ordered by
     * score(t) descending (ties: lower id first), then by split position.
     */
    private static List<String> merges(Vocabulary vocabulary, String[] names, Map<String, Integer> ids) {
        List<Integer> targets = new ArrayList<>();
        for (int id = FIRST_BYTE_ID; id < names.length; id++) {
            targets.add(id);
        }
        targets.sort(Comparator.<Integer>comparingDouble(id -> -vocabulary.scores()[id]).thenComparingInt(id -> id));
        List<String> merges = new ArrayList<>();
        for (int target : targets) {
            String piece = names[target];
            // split only between code points: pieces are whole characters
            for (int at = piece.offsetByCodePoints(0, 1); at < piece.length(); at = piece.offsetByCodePoints(at, 1)) {
                Integer left = ids.get(piece.substring(0, at));
                Integer right = ids.get(piece.substring(at));
                if (left != null && right != null && left >= FIRST_BYTE_ID && right >= FIRST_BYTE_ID) {
                    // no piece contains a plain space any more, so the "a b" form is unambiguous
                    merges.add(names[left] + " " + names[right]);
                }
            }
        }
        return merges;
    }

    private static Map<String, Object> bosTemplate() {
        String bos = HF_SPECIALS[BOS_ID];
        Map<String, Object> special = Map.of("id", bos, "ids", List.of(BOS_ID), "tokens", List.of(bos));
        return Map.of(
                "type", "TemplateProcessing",
                "single", List.of(
                        Map.of("SpecialToken", Map.of("id", bos, "type_id", 0)),
                        Map.of("Sequence", Map.of("id", "A", "type_id", 0))),
                "pair", List.of(
                        Map.of("SpecialToken", Map.of("id", bos, "type_id", 0)),
                        Map.of("Sequence", Map.of("id", "A", "type_id", 0)),
                        Map.of("SpecialToken", Map.of("id", bos, "type_id", 1)),
                        Map.of("Sequence", Map.of("id", "B", "type_id", 1))),
                "special_tokens", Map.of(bos, special));
    }

    /** tokenizer_config.json: BOS added by the post-processor, no EOS, no space clean-up on decode. */
    public static Map<String, Object> tokenizerConfig(int modelMaxLength) {
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("tokenizer_class", "PreTrainedTokenizerFast");
        config.put("add_bos_token", true);
        config.put("add_eos_token", false);
        config.put("bos_token", HF_SPECIALS[BOS_ID]);
        config.put("eos_token", HF_SPECIALS[EOS_ID]);
        config.put("unk_token", HF_SPECIALS[UNK_ID]);
        config.put("clean_up_tokenization_spaces", false);
        config.put("model_max_length", modelMaxLength);
        return config;
    }

    /** Writes tokenizer.json and tokenizer_config.json into {@code directory}. */
    public static void write(Vocabulary vocabulary, int modelMaxLength, Path directory) {
        JsonFiles.write(directory.resolve("tokenizer.json"), tokenizerJson(vocabulary));
        JsonFiles.write(directory.resolve("tokenizer_config.json"), tokenizerConfig(modelMaxLength));
    }

    static String bytePiece(int b) {
        return String.format("<0x%02X>", b);
    }

    private static String quote(String s) {
        return '"' + s.replace("\n", "\\n") + '"';
    }
}
