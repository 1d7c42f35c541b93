package jobs.tokenize;

import activations.table.TokenTableManifest;
import activations.tokenizer.TextTokenizer;
import jobs.spark.SparkTestSession;
import jobs.tokenize.TokenizeJob.InputFormat;
import jobs.tokenize.TokenizeJob.Options;
import jobs.tokenize.TokenizeJob.TextSplit;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenizeJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final Path CORPUS = Path.of("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt");
    static SparkSession spark;
    static TextTokenizer tokenizer;

    @BeforeAll
    static void start() {
        spark = SparkTestSession.start();
        tokenizer = TextTokenizer.load(Path.of(MODEL));
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static Options options(Path input, InputFormat format, TextSplit split, int context, Path out) {
        return new Options(MODEL, input.toString(), format, split, "text", context, false, null, false, out.toString(), false);
    }

    /** Rows of a token table in seq_id order: tokens per sequence. */
    static List<int[]> sequences(Path table) {
        return spark.read().parquet(table.toString()).orderBy("seq_id").collectAsList().stream()
                .map(r -> r.getList(1).stream().mapToInt(o -> (Integer) o).toArray())
                .collect(Collectors.toList());
    }

    @Test
    void packsDocumentsInInputOrderWithBosAndSeparators(@TempDir Path dir) throws IOException {
        List<String> lines = Files.readAllLines(CORPUS).subList(0, 120);
        Path a = dir.resolve("in/a.txt");
        Path b = dir.resolve("in/b.txt");
        Files.createDirectories(a.getParent());
        Files.write(a, lines.subList(0, 60));
        Files.write(b, lines.subList(60, 120));
        Path out = dir.resolve("tokens");
        TokenTableManifest m = TokenizeJob.run(spark, options(dir.resolve("in"), InputFormat.TEXT, TextSplit.LINE, 64, out));

        // Independent expectation: every non-empty line in file order, encoded without BOS, plus EOS (2).
        List<Integer> stream = new ArrayList<>();
        long documents = 0;
        for (String line : lines) {
            if (!line.isBlank()) {
                for (int id : tokenizer.encode(line.strip(), false)) {
                    stream.add(id);
                }
                stream.add(2);
                documents++;
            }
        }
        List<int[]> seqs = sequences(out);
        assertEquals(stream.size() / 63, seqs.size(), "full sequences only");
        assertEquals(seqs.size(), m.sequences());
        assertEquals(documents, m.documents());
        assertEquals(64L * seqs.size(), m.tokens());
        for (int s = 0; s < seqs.size(); s++) {
            int[] seq = seqs.get(s);
            assertEquals(64, seq.length);
            assertEquals(1, seq[0], "BOS first");
            for (int i = 1; i < 64; i++) {
                assertEquals(stream.get(s * 63 + i - 1), seq[i], "sequence " + s + " token " + i);
            }
        }
        assertEquals(TokenTableManifest.KIND, TokenTableManifest.read(spark.sparkContext().hadoopConfiguration(),
                new org.apache.hadoop.fs.Path(out.toString())).kind());
    }

    @Test
    void sameInputGivesSameSequenceIdsWhateverTheSplits(@TempDir Path dir) throws IOException {
        Path corpus = dir.resolve("corpus.txt");
        Files.write(corpus, Files.readAllLines(CORPUS).subList(0, 1500));
        Path first = dir.resolve("one");
        Path second = dir.resolve("two");
        TokenizeJob.run(spark, options(corpus, InputFormat.TEXT, TextSplit.LINE, 128, first));
        String key = "mapreduce.input.fileinputformat.split.maxsize";
        spark.sparkContext().hadoopConfiguration().set(key, "16384");
        try {
            TokenizeJob.run(spark, options(corpus, InputFormat.TEXT, TextSplit.LINE, 128, second));
        } finally {
            spark.sparkContext().hadoopConfiguration().unset(key);
        }
        List<Row> a = spark.read().parquet(first.toString()).orderBy("seq_id").collectAsList();
        List<Row> b = spark.read().parquet(second.toString()).orderBy("seq_id").collectAsList();
        assertTrue(a.size() > 100, a.size() + " sequences");
        assertEquals(a, b);
    }

    @Test
    void blankLineBlocksAreDocuments(@TempDir Path dir) throws IOException {
        Path input = dir.resolve("blocks.txt");
        Files.writeString(input, "One day a cat sat.\nIt was happy.\n\n\nThe dog ran.\n\nThe end came.\n");
        Path out = dir.resolve("t");
        TokenTableManifest m = TokenizeJob.run(spark, new Options(MODEL, input.toString(), InputFormat.TEXT,
                TextSplit.BLANK_LINE, "text", 512, true, null, false, out.toString(), false));
        assertEquals(3, m.documents());
        int[] seq = sequences(out).get(0);
        List<Integer> expected = new ArrayList<>(List.of(1));
        for (String doc : List.of("One day a cat sat.\nIt was happy.", "The dog ran.", "The end came.")) {
            for (int id : tokenizer.encode(doc, false)) {
                expected.add(id);
            }
            expected.add(2);
        }
        assertArrayEquals(expected.stream().mapToInt(i -> i).toArray(), seq);
    }

    @Test
    void readsJsonlAndParquetFields(@TempDir Path dir) throws IOException {
        Path jsonl = dir.resolve("docs.jsonl");
        Files.writeString(jsonl, "{\"id\": 1, \"story\": \"Once upon a time there was a dog.\"}\n"
                + "{\"id\": 2, \"story\": \"The dog liked to run.\"}\n");
        Path fromJson = dir.resolve("j");
        TokenizeJob.run(spark, new Options(MODEL, jsonl.toString(), InputFormat.JSONL, TextSplit.LINE, "story",
                512, true, null, false, fromJson.toString(), false));

        StructType schema = new StructType().add("story", DataTypes.StringType);
        Path parquet = dir.resolve("docs.parquet");
        spark.createDataFrame(List.of(RowFactory.create("Once upon a time there was a dog."),
                RowFactory.create("The dog liked to run.")), schema).coalesce(1).write().parquet(parquet.toString());
        Path fromParquet = dir.resolve("p");
        TokenizeJob.run(spark, new Options(MODEL, parquet.toString(), InputFormat.PARQUET, TextSplit.LINE, "story",
                512, true, null, false, fromParquet.toString(), false));
        assertArrayEquals(sequences(fromJson).get(0), sequences(fromParquet).get(0));

        var missing = assertThrows(IllegalArgumentException.class, () -> TokenizeJob.run(spark, new Options(MODEL,
                parquet.toString(), InputFormat.PARQUET, TextSplit.LINE, "text", 512, true, null, false,
                dir.resolve("x").toString(), false)));
        assertTrue(missing.getMessage().contains("no column 'text' (columns: story)"), missing.getMessage());
    }

    @Test
    void malformedJsonNamesTheFileAndOffsetUnlessSkipped(@TempDir Path dir) throws IOException {
        Path jsonl = dir.resolve("bad.jsonl");
        Files.writeString(jsonl, "{\"text\": \"A good line about a cat.\"}\n{\"text\": broken\n{\"txt\": \"wrong field\"}\n");
        Exception e = assertThrows(Exception.class, () -> TokenizeJob.run(spark, options(jsonl, InputFormat.JSONL,
                TextSplit.LINE, 16, dir.resolve("o"))));
        String message = rootMessage(e);
        assertTrue(message.contains("malformed JSON in") && message.contains("at byte 37") && message.contains("--skip-malformed"), message);
        assertFalse(Files.exists(dir.resolve("o")), "nothing published on failure");

        TokenTableManifest m = TokenizeJob.run(spark, new Options(MODEL, jsonl.toString(), InputFormat.JSONL,
                TextSplit.LINE, "text", 4, false, null, true, dir.resolve("ok").toString(), false));
        assertEquals(1, m.documents());
    }

    @Test
    void badInputIsRefusedBeforeAnythingIsWritten(@TempDir Path dir) throws IOException {
        Path empty = dir.resolve("empty.txt");
        Files.writeString(empty, "\n\n   \n");
        var noText = assertThrows(IllegalArgumentException.class,
                () -> TokenizeJob.run(spark, options(empty, InputFormat.TEXT, TextSplit.LINE, 16, dir.resolve("a"))));
        assertTrue(noText.getMessage().contains("has no text"), noText.getMessage());

        var tooLong = assertThrows(IllegalArgumentException.class,
                () -> TokenizeJob.run(spark, options(CORPUS, InputFormat.TEXT, TextSplit.LINE, 4096, dir.resolve("b"))));
        assertTrue(tooLong.getMessage().contains("larger than the model's context of 512"), tooLong.getMessage());

        var nothing = assertThrows(IllegalArgumentException.class,
                () -> TokenizeJob.run(spark, options(dir.resolve("nope/*.txt"), InputFormat.TEXT, TextSplit.LINE, 16, dir.resolve("c"))));
        assertTrue(nothing.getMessage().contains("no input files match"), nothing.getMessage());

        Path small = dir.resolve("small.txt");
        Files.writeString(small, "Once upon a time there was a little cat who liked milk very much.\n");
        Path out = dir.resolve("out");
        TokenizeJob.run(spark, options(small, InputFormat.TEXT, TextSplit.LINE, 8, out));
        byte[] before = Files.readAllBytes(out.resolve(TokenTableManifest.FILE));
        var exists = assertThrows(IllegalArgumentException.class,
                () -> TokenizeJob.run(spark, options(small, InputFormat.TEXT, TextSplit.LINE, 8, out)));
        assertTrue(exists.getMessage().contains("--overwrite"), exists.getMessage());
        assertArrayEquals(before, Files.readAllBytes(out.resolve(TokenTableManifest.FILE)), "existing output untouched");
    }

    static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage();
    }
}
