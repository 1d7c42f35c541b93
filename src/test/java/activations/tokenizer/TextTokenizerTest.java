package activations.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TextTokenizerTest {

    static final Path REPO = Path.of(System.getProperty("spindle.repo", "."));
    static final Path TINYSTORIES = REPO.resolve("models/tinystories-656k");

    static TextTokenizer tokenizer;

    @BeforeAll
    static void load() {
        tokenizer = TextTokenizer.load(TINYSTORIES);
    }

    @AfterAll
    static void close() {
        tokenizer.close();
    }

    @Test
    void goldenPromptGivesTheReferenceIds() throws Exception {
        JsonNode golden = new ObjectMapper().readTree(TINYSTORIES.resolve("golden_reference.json").toFile());
        int[] expected = new int[golden.get("prompt_ids").size()];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = golden.get("prompt_ids").get(i).asInt();
        }
        String prompt = golden.get("prompt").asText();

        assertArrayEquals(expected, tokenizer.encode(prompt, true));
        assertArrayEquals(Arrays.copyOfRange(expected, 1, expected.length), tokenizer.encode(prompt, false));
        assertEquals(1, expected[0]);
    }

    @Test
    void specialTokensAndPiecesComeFromTheModelFiles() {
        assertEquals(2048, tokenizer.vocabSize());
        assertEquals(1, tokenizer.bosId().getAsInt());
        assertEquals(2, tokenizer.eosId().getAsInt());
        assertEquals("<|start_story|>", tokenizer.piece(1));
        assertEquals("<unk>", tokenizer.piece(0));
        assertTrue(tokenizer.isSpecial(0) && tokenizer.isSpecial(1) && tokenizer.isSpecial(2));
        assertFalse(tokenizer.isSpecial(80));
        // the pieces of an encoding spell the normalized text ("▁" for spaces, dummy prefix)
        String text = "Once upon a time";
        String spelled = Arrays.stream(tokenizer.encode(text, false)).mapToObj(tokenizer::piece).collect(Collectors.joining());
        assertEquals("▁Once▁upon▁a▁time", spelled);
    }

    @Test
    void decodeInvertsEncodeAndLongTextsAreNotTruncated() throws Exception {
        String story = Files.readString(REPO.resolve("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .substring(0, 6000);
        int[] ids = tokenizer.encode(story, false);
        assertTrue(ids.length > 1000, "DJL's default 512-token truncation must be off, got " + ids.length);
        assertEquals(story, tokenizer.decode(ids));
        assertEquals("<|start_story|>", tokenizer.decode(new int[] {1}));
        assertEquals("", tokenizer.decode(new int[] {1}, true));
    }

    @Test
    void concurrentEncodesAgreeWithSequentialOnes() throws Exception {
        List<String> lines = Files.readAllLines(REPO.resolve("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"))
                .stream().filter(l -> !l.isBlank()).limit(400).collect(Collectors.toList());
        List<int[]> sequential = lines.stream().map(l -> tokenizer.encode(l, true)).collect(Collectors.toList());
        List<int[]> parallel = IntStream.range(0, 4).boxed().parallel()
                .flatMap(round -> lines.parallelStream().map(l -> tokenizer.encode(l, true)))
                .collect(Collectors.toList());
        for (int i = 0; i < parallel.size(); i++) {
            assertArrayEquals(sequential.get(i % lines.size()), parallel.get(i));
        }
    }

    @Test
    void badInputGivesOneLineErrors(@TempDir Path empty) {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> TextTokenizer.load(empty));
        assertTrue(missing.getMessage().contains("no tokenizer.json in " + empty.toAbsolutePath()), missing.getMessage());
        assertFalse(missing.getMessage().contains("\n"));

        IllegalArgumentException emptyText = assertThrows(IllegalArgumentException.class, () -> tokenizer.encode("", true));
        assertTrue(emptyText.getMessage().contains("empty"));
        assertThrows(IllegalArgumentException.class, () -> tokenizer.piece(2048));
        assertThrows(IllegalArgumentException.class, () -> tokenizer.decode(new int[] {-1}));
    }

    @Test
    void configAddBosIsHonouredWhenThePostProcessorAddsNone(@TempDir Path dir) throws Exception {
        ObjectMapper json = new ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode tokenizerJson =
                (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(TINYSTORIES.resolve("tokenizer.json").toFile());
        tokenizerJson.putNull("post_processor");
        json.writeValue(dir.resolve("tokenizer.json").toFile(), tokenizerJson);
        Files.copy(TINYSTORIES.resolve("tokenizer_config.json"), dir.resolve("tokenizer_config.json"));

        try (TextTokenizer noPostProcessor = TextTokenizer.load(dir)) {
            assertArrayEquals(tokenizer.encode("She ran.", true), noPostProcessor.encode("She ran.", true));
            assertArrayEquals(tokenizer.encode("She ran.", false), noPostProcessor.encode("She ran.", false));
        }
    }
}
