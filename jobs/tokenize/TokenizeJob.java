package jobs.tokenize;

import activations.model.ModelChecksums;
import activations.model.ModelConfig;
import activations.table.TokenTableManifest;
import activations.tokenizer.TextTokenizer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.output.OutputDirectory;
import jobs.spark.ExecutorResources;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.mapreduce.Job;
import org.apache.hadoop.mapreduce.lib.input.FileInputFormat;
import org.apache.hadoop.mapreduce.lib.input.FileSplit;
import org.apache.hadoop.mapreduce.lib.input.TextInputFormat;
import org.apache.spark.api.java.JavaNewHadoopRDD;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.storage.StorageLevel;
import scala.Tuple2;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.apache.spark.sql.functions.col;

/**
 * Tokenizes a corpus on executors and packs it into fixed-length sequences: a token table.
 *
 * <p>Determinism: every document gets an id from its position in the input (file index in sorted
 * path order, then byte offset or row index), documents are tokenized independently, sorted by
 * that id, and laid end to end with a separator token; a global prefix sum over token counts then
 * cuts the stream into sequences. So the same input and options give the same sequence ids however
 * Spark splits and schedules the work.
 */
public final class TokenizeJob {

    public enum InputFormat {
        TEXT, JSONL, PARQUET;

        /** A format by name (text, jsonl, parquet), or one-line error naming the choices. */
        public static InputFormat parse(String name) {
            try {
                return valueOf(name.toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("format " + name + " is not one of: text, jsonl, parquet");
            }
        }

        /** The format a path's extension implies; plain text when it implies none. */
        public static InputFormat guess(String input) {
            String lower = input.toLowerCase(Locale.ROOT);
            if (lower.endsWith(".parquet")) {
                return PARQUET;
            }
            if (lower.endsWith(".jsonl") || lower.endsWith(".json") || lower.endsWith(".jsonl.gz")) {
                return JSONL;
            }
            return TEXT;
        }
    }

    /** How plain text becomes documents: one per non-empty line, or one per blank-line-separated block. */
    public enum TextSplit {
        LINE, BLANK_LINE;

        public static TextSplit parse(String name) {
            return switch (name.toLowerCase(Locale.ROOT)) {
                case "line" -> LINE;
                case "blank-line", "blank_line", "paragraph" -> BLANK_LINE;
                default -> throw new IllegalArgumentException("split " + name + " is not one of: line, blank-line");
            };
        }
    }

    public record Options(String modelDir, String input, InputFormat format, TextSplit split, String textField,
                          int contextSize, boolean keepPartial, Integer separatorId, boolean skipMalformed,
                          String output, boolean overwrite, long firstSeqId) implements Serializable {

        /** Seq ids from 0: a table of its own. */
        public Options(String modelDir, String input, InputFormat format, TextSplit split, String textField,
                       int contextSize, boolean keepPartial, Integer separatorId, boolean skipMalformed,
                       String output, boolean overwrite) {
            this(modelDir, input, format, split, textField, contextSize, keepPartial, separatorId, skipMalformed, output,
                    overwrite, 0);
        }

        /** The same settings for one file of an accumulated table: its own output, seq ids from {@code first}. */
        public Options forPart(String file, String partOutput, long first) {
            return new Options(modelDir, file, format, split, textField, contextSize, keepPartial, separatorId,
                    skipMalformed, partOutput, false, first);
        }
    }

    /** A document's id: file index in the high bits, offset (byte or row) in the low 40. */
    static final int OFFSET_BITS = 40;

    // RDD elements are plain classes, not records: Spark's Kryo (via chill) cannot serialize records.

    static final class Document implements Serializable {
        final long id;
        final String text;

        Document(long id, String text) {
            this.id = id;
            this.text = text;
        }
    }

    static final class TokenizedDocument implements Serializable {
        final long id;
        final int[] tokens;

        TokenizedDocument(long id, int[] tokens) {
            this.id = id;
            this.tokens = tokens;
        }
    }

    /** A slice of one document that lands in one sequence, at {@code start} in the sequence body. */
    static final class Piece implements Serializable {
        final int start;
        final int[] tokens;
        final long documentId;

        Piece(int start, int[] tokens, long documentId) {
            this.start = start;
            this.tokens = tokens;
            this.documentId = documentId;
        }
    }

    private TokenizeJob() {
    }

    public static TokenTableManifest run(SparkSession spark, Options o) {
        java.nio.file.Path localModel = ExecutorResources.localDirectory(o.modelDir());
        ModelConfig config = ModelConfig.load(localModel);
        if (o.contextSize() < 2) {
            throw new IllegalArgumentException("--context-size " + o.contextSize() + " is too small; use at least 2");
        }
        if (o.contextSize() > config.maxPositions()) {
            throw new IllegalArgumentException("--context-size " + o.contextSize() + " is larger than the model's context of "
                    + config.maxPositions() + " positions; use at most " + config.maxPositions());
        }
        TextTokenizer tokenizer = TextTokenizer.load(localModel);
        Integer bos = tokenizer.bosId().isPresent() ? tokenizer.bosId().getAsInt() : null;
        int separator = o.separatorId() != null ? o.separatorId()
                : tokenizer.eosId().isPresent() ? tokenizer.eosId().getAsInt()
                : bos != null ? bos : -1;
        if (separator < 0 || separator >= tokenizer.vocabSize()) {
            throw new IllegalArgumentException("the tokenizer has no EOS or BOS token to separate documents; pass --separator-id");
        }

        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        List<Path> files = listInputFiles(hadoop, o.input());
        OutputDirectory out = OutputDirectory.begin(hadoop, o.output(), TokenTableManifest.FILE, o.overwrite());
        try {
            JavaRDD<Document> documents = o.format() == InputFormat.PARQUET
                    ? readParquet(spark, files, o.textField())
                    : readText(spark, files, o);
            int bodyLength = o.contextSize() - (bos == null ? 0 : 1);
            String modelDir = o.modelDir();
            JavaRDD<TokenizedDocument> tokenized = documents.mapPartitions(it -> {
                TextTokenizer tok = ExecutorResources.tokenizer(modelDir);
                List<TokenizedDocument> outDocs = new ArrayList<>();
                while (it.hasNext()) {
                    Document d = it.next();
                    if (d.text.isBlank()) {
                        continue;
                    }
                    int[] ids = tok.encode(d.text, false);
                    int[] withSeparator = Arrays.copyOf(ids, ids.length + 1);
                    withSeparator[ids.length] = separator;
                    outDocs.add(new TokenizedDocument(d.id, withSeparator));
                }
                return outDocs.iterator();
            });
            int partitions = Math.max(1, documents.getNumPartitions());
            JavaRDD<TokenizedDocument> sorted = tokenized.sortBy(d -> d.id, true, partitions)
                    .persist(StorageLevel.MEMORY_AND_DISK());
            List<long[]> counts = sorted.mapPartitions(it -> {
                long tokens = 0;
                long docs = 0;
                while (it.hasNext()) {
                    tokens += it.next().tokens.length;
                    docs++;
                }
                return Collections.singletonList(new long[] {tokens, docs}).iterator();
            }).collect();
            long[] offsets = new long[counts.size()];
            long totalTokens = 0;
            long totalDocuments = 0;
            for (int p = 0; p < counts.size(); p++) {
                offsets[p] = totalTokens;
                totalTokens += counts.get(p)[0];
                totalDocuments += counts.get(p)[1];
            }
            if (totalDocuments == 0) {
                throw new IllegalArgumentException("the corpus " + o.input() + " has no text (every document is empty); "
                        + "check the path, --format and --text-field");
            }
            long fullSequences = totalTokens / bodyLength;
            long sequences = fullSequences + (o.keepPartial() && totalTokens % bodyLength != 0 ? 1 : 0);
            if (sequences == 0) {
                throw new IllegalArgumentException("the corpus has " + totalTokens + " tokens, fewer than one sequence of "
                        + bodyLength + "; use a smaller --context-size, more text, or --keep-partial");
            }

            JavaPairRDD<Long, Piece> pieces = sorted.mapPartitionsWithIndex((index, it) -> {
                List<Tuple2<Long, Piece>> outPieces = new ArrayList<>();
                long position = offsets[index];
                while (it.hasNext()) {
                    TokenizedDocument d = it.next();
                    int[] t = d.tokens;
                    int from = 0;
                    while (from < t.length) {
                        long seq = (position + from) / bodyLength;
                        int start = (int) ((position + from) % bodyLength);
                        int take = Math.min(t.length - from, bodyLength - start);
                        if (seq < sequences) {
                            outPieces.add(new Tuple2<>(seq, new Piece(start, Arrays.copyOfRange(t, from, from + take), d.id)));
                        }
                        from += take;
                    }
                    position += t.length;
                }
                return outPieces.iterator();
            }, true).mapPartitionsToPair(it -> it);

            Integer bosId = bos;
            long firstSeqId = o.firstSeqId();
            JavaRDD<Row> rows = pieces.groupByKey(partitions).sortByKey(true, partitions).map(entry -> {
                List<Piece> parts = new ArrayList<>();
                entry._2().forEach(parts::add);
                parts.sort((a, b) -> Integer.compare(a.start, b.start));
                int length = (bosId == null ? 0 : 1);
                for (Piece p : parts) {
                    length += p.tokens.length;
                }
                int[] tokens = new int[length];
                int at = 0;
                if (bosId != null) {
                    tokens[at++] = bosId;
                }
                List<Long> docIds = new ArrayList<>();
                for (Piece p : parts) {
                    System.arraycopy(p.tokens, 0, tokens, at, p.tokens.length);
                    at += p.tokens.length;
                    if (docIds.isEmpty() || docIds.get(docIds.size() - 1) != p.documentId) {
                        docIds.add(p.documentId);
                    }
                }
                return RowFactory.create(entry._1() + firstSeqId, scalaSeq(toList(tokens)), scalaSeq(docIds));
            });
            StructType schema = new StructType()
                    .add("seq_id", DataTypes.LongType, false)
                    .add("tokens", DataTypes.createArrayType(DataTypes.IntegerType, false), false)
                    .add("doc_ids", DataTypes.createArrayType(DataTypes.LongType, false), false);
            spark.createDataFrame(rows, schema).write().mode(SaveMode.ErrorIfExists).parquet(out.staging().toString());
            sorted.unpersist(false);

            long tokensWritten = fullSequences * o.contextSize()
                    + (sequences > fullSequences ? (totalTokens % bodyLength) + (bos == null ? 0 : 1) : 0);
            TokenTableManifest manifest = new TokenTableManifest(TokenTableManifest.KIND, 1, o.modelDir(),
                    ModelChecksums.file(localModel.resolve("tokenizer.json")), o.contextSize(), bos, separator, sequences,
                    tokensWritten, totalDocuments, o.input(), o.format().name().toLowerCase(Locale.ROOT),
                    o.split().name().toLowerCase(Locale.ROOT).replace('_', '-'), o.keepPartial(),
                    Instant.now().toString(), jobs.cli.Spindle.VERSION, o.firstSeqId(), null);
            manifest.write(hadoop, out.staging());
            out.publish();
            return manifest;
        } catch (RuntimeException e) {
            out.abandon();
            throw e;
        }
    }

    /** Spark 4's Row encoder takes Scala sequences for array columns. */
    private static <T> scala.collection.immutable.Seq<T> scalaSeq(List<T> list) {
        return scala.jdk.javaapi.CollectionConverters.asScala(list).toList();
    }

    private static List<Integer> toList(int[] values) {
        List<Integer> list = new ArrayList<>(values.length);
        for (int v : values) {
            list.add(v);
        }
        return list;
    }

    /** Files matching a path or glob (directories expanded, hidden files skipped), in path order. */
    public static List<Path> listInputFiles(Configuration conf, String input) {
        try {
            Path pattern = new Path(input);
            FileSystem fs = pattern.getFileSystem(conf);
            FileStatus[] matches = fs.globStatus(pattern);
            List<Path> files = new ArrayList<>();
            if (matches != null) {
                for (FileStatus status : matches) {
                    collect(fs, status, files);
                }
            }
            if (files.isEmpty()) {
                throw new IllegalArgumentException("no input files match " + input + "; check the path or glob");
            }
            files.sort((a, b) -> a.toString().compareTo(b.toString()));
            return files;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + input + ": " + e.getMessage(), e);
        }
    }

    private static void collect(FileSystem fs, FileStatus status, List<Path> files) throws IOException {
        String name = status.getPath().getName();
        if (name.startsWith("_") || name.startsWith(".")) {
            return;
        }
        if (status.isDirectory()) {
            for (FileStatus child : fs.listStatus(status.getPath())) {
                collect(fs, child, files);
            }
        } else {
            files.add(status.getPath());
        }
    }

    private static JavaRDD<Document> readText(SparkSession spark, List<Path> files, Options o) {
        Job job;
        try {
            job = Job.getInstance(new Configuration(spark.sparkContext().hadoopConfiguration()));
            FileInputFormat.setInputPaths(job, files.toArray(new Path[0]));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        if (o.format() == InputFormat.TEXT && o.split() == TextSplit.BLANK_LINE) {
            job.getConfiguration().set("textinputformat.record.delimiter", "\n\n");
        }
        Map<String, Integer> fileIndex = indexOf(files);
        JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        @SuppressWarnings("unchecked")
        JavaNewHadoopRDD<LongWritable, Text> raw = (JavaNewHadoopRDD<LongWritable, Text>) jsc.newAPIHadoopRDD(
                job.getConfiguration(), TextInputFormat.class, LongWritable.class, Text.class);
        boolean jsonl = o.format() == InputFormat.JSONL;
        String field = o.textField();
        boolean skipMalformed = o.skipMalformed();
        return raw.mapPartitionsWithInputSplit((split, it) -> {
            Path file = ((FileSplit) split).getPath();
            Integer index = fileIndex.get(file.toUri().getPath());
            if (index == null) {
                throw new IllegalStateException("input split " + file + " is not among the listed input files");
            }
            ObjectMapper json = jsonl ? new ObjectMapper() : null;
            List<Document> docs = new ArrayList<>();
            while (it.hasNext()) {
                Tuple2<LongWritable, Text> record = it.next();
                long offset = record._1().get();
                String text = record._2().toString();
                if (jsonl) {
                    if (text.isBlank()) {
                        continue;
                    }
                    text = jsonText(json, text, field, file, offset, skipMalformed);
                    if (text == null) {
                        continue;
                    }
                }
                docs.add(new Document(((long) index << OFFSET_BITS) | offset, text.strip()));
            }
            return docs.iterator();
        }, true);
    }

    /** The text field of one JSON line; null to skip a malformed line when asked to. */
    private static String jsonText(ObjectMapper json, String line, String field, Path file, long offset,
                                   boolean skipMalformed) {
        JsonNode node;
        try {
            node = json.readTree(line);
        } catch (IOException e) {
            if (skipMalformed) {
                return null;
            }
            throw new IllegalArgumentException("malformed JSON in " + file + " at byte " + offset + " ("
                    + firstLine(e.getMessage()) + "); fix the line or pass --skip-malformed");
        }
        JsonNode value = node == null ? null : node.get(field);
        if (value == null || !value.isTextual()) {
            if (skipMalformed) {
                return null;
            }
            List<String> fields = new ArrayList<>();
            if (node != null) {
                node.fieldNames().forEachRemaining(fields::add);
            }
            throw new IllegalArgumentException("the JSON line in " + file + " at byte " + offset + " has no text field '"
                    + field + "' (fields: " + String.join(", ", fields) + "); set --text-field or pass --skip-malformed");
        }
        return value.asText();
    }

    private static String firstLine(String message) {
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
    }

    private static JavaRDD<Document> readParquet(SparkSession spark, List<Path> files, String column) {
        String[] paths = files.stream().map(Path::toString).toArray(String[]::new);
        Dataset<Row> table;
        try {
            table = spark.read().parquet(paths);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot read the Parquet input (" + firstLine(String.valueOf(e.getMessage()))
                    + "); check that every file is Parquet");
        }
        if (!Arrays.asList(table.columns()).contains(column)) {
            throw new IllegalArgumentException("the Parquet input has no column '" + column + "' (columns: "
                    + String.join(", ", table.columns()) + "); set --text-field");
        }
        Map<String, Integer> fileIndex = indexOf(files);
        return table.select(col(column), col("_metadata.file_path"), col("_metadata.row_index")).javaRDD().map(row -> {
            String path = new Path(row.getString(1)).toUri().getPath();
            Integer index = fileIndex.get(path);
            if (index == null) {
                throw new IllegalStateException("row from " + path + " is not among the listed input files");
            }
            String text = row.isNullAt(0) ? "" : row.getString(0);
            return new Document(((long) index << OFFSET_BITS) | row.getLong(2), text);
        });
    }

    private static Map<String, Integer> indexOf(List<Path> files) {
        Map<String, Integer> index = new HashMap<>();
        for (int i = 0; i < files.size(); i++) {
            index.put(files.get(i).toUri().getPath(), i);
        }
        return index;
    }
}
