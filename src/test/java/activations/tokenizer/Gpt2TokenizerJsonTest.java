package activations.tokenizer;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Gpt2TokenizerJsonTest {

    static final Path REPO = Path.of(System.getProperty("spindle.repo", "."));
    static final Path GPT2 = REPO.resolve("models/tokenizers/gpt2");
    static final Path CORPUS = REPO.resolve("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt");

    @TempDir
    static Path dir;
    static TextTokenizer tokenizer;

    @BeforeAll
    static void write() {
        Gpt2TokenizerJson.writeInto(GPT2.resolve("encoder.json"), GPT2.resolve("vocab.bpe"), dir);
        tokenizer = TextTokenizer.load(dir);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    /** The classic GPT-2 encoder (openai/gpt-2 encoder.py), ported directly: test oracle only. */
    static final class ReferenceEncoder {
        final Map<String, Integer> encoder;
        final Map<String, Integer> ranks = new HashMap<>();
        final char[] byteToUnicode = new char[256];
        final Pattern pattern = Pattern.compile(
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                Pattern.UNICODE_CHARACTER_CLASS);

        ReferenceEncoder(Path encoderJson, Path vocabBpe) throws Exception {
            encoder = new ObjectMapper().readValue(encoderJson.toFile(), new TypeReference<Map<String, Integer>>() { });
            List<String> lines = Files.readAllLines(vocabBpe, StandardCharsets.UTF_8);
            for (int i = 1; i < lines.size(); i++) {
                if (!lines.get(i).isEmpty()) {
                    ranks.put(lines.get(i), ranks.size());
                }
            }
            List<Integer> printable = new ArrayList<>();
            for (int b = '!'; b <= '~'; b++) printable.add(b);
            for (int b = 0xA1; b <= 0xAC; b++) printable.add(b);
            for (int b = 0xAE; b <= 0xFF; b++) printable.add(b);
            int next = 0;
            for (int b = 0; b < 256; b++) {
                byteToUnicode[b] = printable.contains(b) ? (char) b : (char) (256 + next++);
            }
        }

        int[] encode(String text) {
            List<Integer> ids = new ArrayList<>();
            Matcher m = pattern.matcher(text);
            while (m.find()) {
                StringBuilder token = new StringBuilder();
                for (byte b : m.group().getBytes(StandardCharsets.UTF_8)) {
                    token.append(byteToUnicode[b & 0xFF]);
                }
                for (String piece : bpe(token.toString())) {
                    ids.add(encoder.get(piece));
                }
            }
            return ids.stream().mapToInt(Integer::intValue).toArray();
        }

        List<String> bpe(String token) {
            List<String> word = token.chars().mapToObj(c -> String.valueOf((char) c)).collect(Collectors.toList());
            while (word.size() > 1) {
                int bestRank = Integer.MAX_VALUE;
                String first = null, second = null;
                for (int i = 0; i < word.size() - 1; i++) {
                    Integer rank = ranks.get(word.get(i) + " " + word.get(i + 1));
                    if (rank != null && rank < bestRank) {
                        bestRank = rank;
                        first = word.get(i);
                        second = word.get(i + 1);
                    }
                }
                if (first == null) {
                    break;
                }
                List<String> merged = new ArrayList<>();
                for (int i = 0; i < word.size(); i++) {
                    if (i < word.size() - 1 && word.get(i).equals(first) && word.get(i + 1).equals(second)) {
                        merged.add(first + second);
                        i++;
                    } else {
                        merged.add(word.get(i));
                    }
                }
                word = merged;
            }
            return word;
        }
    }

    @Test
    void matchesTheClassicGpt2EncoderOnTheFirst200Stories() throws Exception {
        ReferenceEncoder reference = new ReferenceEncoder(GPT2.resolve("encoder.json"), GPT2.resolve("vocab.bpe"));
        // stories are joined by a single newline, paragraphs inside a story by a blank line
        List<String> stories = Arrays.stream(Files.readString(CORPUS).split("(?<!\n)\n(?!\n)"))
                .filter(s -> !s.isBlank()).limit(200).collect(Collectors.toList());
        assertEquals(200, stories.size());
        long tokens = 0;
        for (String story : stories) {
            int[] expected = reference.encode(story);
            assertArrayEquals(expected, tokenizer.encode(story, false), () -> "story: " + story);
            tokens += expected.length;
        }
        assertTrue(tokens > 30_000, "tokens compared: " + tokens);
        for (String text : List.of("  two leading spaces, don't  stop\n\n\tTab 123,456 caf\u00e9 \u65e5\u672c \ud83d\ude00 ", "x")) {
            assertArrayEquals(reference.encode(text), tokenizer.encode(text, false), text);
            assertEquals(text, tokenizer.decode(tokenizer.encode(text, false)));
        }
    }

    @Test
    void gpt2AddsNoBosAndKnowsItsSpecialToken() {
        assertArrayEquals(tokenizer.encode("Hello world", false), tokenizer.encode("Hello world", true));
        assertArrayEquals(new int[] {15496, 995}, tokenizer.encode("Hello world", false));
        assertEquals(50257, tokenizer.vocabSize());
        assertEquals(50256, tokenizer.bosId().getAsInt());
        assertEquals(50256, tokenizer.eosId().getAsInt());
        assertTrue(tokenizer.isSpecial(50256));
        assertFalse(tokenizer.isSpecial(995));
        assertEquals("\u0120world", tokenizer.piece(995));
    }

    @Test
    void rejectsFilesThatAreNotGpt2s(@TempDir Path tmp) throws Exception {
        Path badMerges = tmp.resolve("vocab.bpe");
        Files.writeString(badMerges, "#version: 0.2\n\u0120 t\nnot-a-merge\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Gpt2TokenizerJson.write(GPT2.resolve("encoder.json"), badMerges, tmp.resolve("tokenizer.json")));
        assertTrue(e.getMessage().contains("line 3"), e.getMessage());
        assertFalse(Files.exists(tmp.resolve("tokenizer.json")));
        e = assertThrows(IllegalArgumentException.class,
                () -> Gpt2TokenizerJson.write(tmp.resolve("missing.json"), GPT2.resolve("vocab.bpe"), tmp.resolve("tokenizer.json")));
        assertTrue(e.getMessage().contains("no GPT-2 encoder.json"), e.getMessage());
    }
}
