package activations.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Llama2cTokenizerJsonTest {

    static final Path REPO = Path.of(System.getProperty("spindle.repo", "."));
    static final Path TOK512 = REPO.resolve("models/stories260K/tok512.bin");
    static final Path CORPUS = REPO.resolve("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt");

    @TempDir
    static Path dir;
    static TextTokenizer tokenizer;
    static Llama2cReferenceEncoder reference;

    @BeforeAll
    static void convert() throws Exception {
        Llama2cTokenizerJson.write(Llama2cTokenizerJson.read(TOK512), 512, dir);
        tokenizer = TextTokenizer.load(dir);
        reference = new Llama2cReferenceEncoder(TOK512);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void goldenPromptIds() throws Exception {
        JsonNode golden = new ObjectMapper().readTree(REPO.resolve("models/stories260K/golden_reference.json").toFile());
        int[] expected = new int[golden.get("prompt_ids").size()];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = golden.get("prompt_ids").get(i).asInt();
        }
        String prompt = golden.get("prompt").asText();
        assertArrayEquals(expected, tokenizer.encode(prompt, true));
        assertArrayEquals(Arrays.copyOfRange(expected, 1, expected.length), tokenizer.encode(prompt, false));
    }

    @Test
    void encodesEveryCorpusLineExactlyAsLlama2c() throws Exception {
        List<String> texts = new ArrayList<>();
        for (String line : Files.readAllLines(CORPUS)) {
            if (!line.isEmpty()) {
                texts.add(line);
            }
        }
        // whole multi-paragraph stories (newlines go through byte fallback) and non-ASCII text
        String raw = Files.readString(CORPUS);
        // stories are joined by a single newline, paragraphs by a blank line
        Arrays.stream(raw.split("(?<!\n)\n(?!\n)")).filter(story -> story.contains("\n\n")).limit(40)
                .forEach(texts::add);
        texts.addAll(List.of(" leading space", "trailing spaces  ", "tab\there", "a  b   c", "x",
                "caf\u00e9 na\u00efve \u2014 \u65e5\u672c \u2615 \ud83d\ude00 \u2122 end", "\u2122"));
        assertTrue(texts.size() > 5000, "corpus lines: " + texts.size());
        long tokens = 0;
        for (String text : texts) {
            int[] expected = reference.encode(text, true);
            assertArrayEquals(expected, tokenizer.encode(text, true), () -> "text: " + text);
            tokens += expected.length;
        }
        assertTrue(tokens > 200_000, "tokens compared: " + tokens);
    }

    @Test
    void decodeGivesBackTheText() {
        String text = "Lily saw a big dog.\nIt was caf\u00e9 time \u2615.";
        assertEquals(text, tokenizer.decode(tokenizer.encode(text, false)));
        assertEquals(text, tokenizer.decode(tokenizer.encode(text, true), true));
        assertEquals(1, tokenizer.bosId().getAsInt());
        assertEquals(2, tokenizer.eosId().getAsInt());
        assertEquals("<0x0A>", tokenizer.piece(3 + '\n'));
        assertEquals("\u2581t", tokenizer.piece(259));
    }

    @Test
    void rejectsAFileThatIsNotALlama2cTokenizer(@TempDir Path tmp) throws Exception {
        byte[] bytes = Files.readAllBytes(TOK512);
        Path truncated = tmp.resolve("truncated.bin");
        Files.write(truncated, Arrays.copyOf(bytes, bytes.length - 3));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Llama2cTokenizerJson.read(truncated));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());

        Path model = tmp.resolve("model.bin");
        Files.copy(REPO.resolve("models/stories260K/stories260K.bin"), model);
        e = assertThrows(IllegalArgumentException.class, () -> Llama2cTokenizerJson.read(model));
        assertTrue(e.getMessage().contains("not a llama2.c tokenizer") || e.getMessage().contains("expected"), e.getMessage());
    }
}
