package jobs.cache;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.ModelChecksums;
import activations.model.ModelConfig;
import activations.model.ComputeThreads;
import activations.model.TransformerModel;
import activations.safetensors.DType;
import activations.table.ActivationManifest;
import activations.table.ActivationShardWriter;
import activations.table.PackedVectors;
import activations.table.ShardSummary;
import activations.table.TokenTableManifest;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.spark.ExecutorResources;
import jobs.spark.GpuAssignment;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.Partitioner;
import org.apache.spark.TaskContext;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.util.SerializableConfiguration;
import org.nd4j.linalg.factory.Nd4j;
import scala.Tuple2;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.SplittableRandom;

import static org.apache.spark.sql.functions.col;

/**
 * Runs the model over a token table on Spark and writes the activation cache, exactly once.
 *
 * <p>The sequences are cut into shards of about {@code shardSequences} sequences; one Spark task
 * computes one shard (the model is loaded once per executor JVM and shared by its tasks) and commits
 * it as a Parquet file under its final name only if no attempt has committed it yet, so task
 * retries and speculative copies never duplicate or drop rows. Shards go to a hidden
 * {@code .NAME.partial} directory beside the output; a re-run with the same settings resumes
 * there, skipping committed shards. The manifest is written last and the directory is then renamed
 * to the output name, so a partial cache is never mistaken for a complete one.
 */
public final class CacheJob {

    /** Test-only fault injection: fail the first attempt of one shard, before or after its commit. */
    public enum Fault { NONE, BEFORE_COMMIT, AFTER_COMMIT, ALWAYS }

    /**
     * How rows are ordered. {@code NONE}: shards of consecutive sequences, rows in (seq_id, pos)
     * order. {@code SHARDS}: sequences spread over shards by a seeded hash, rows shuffled within each
     * shard (what {@code --shuffle-seed} alone has always done). {@code GLOBAL}: every row's position
     * is a seeded uniform permutation over the whole cache ({@link GlobalShuffle}).
     */
    public enum Shuffle {
        NONE, SHARDS, GLOBAL;

        public static Shuffle parse(String value) {
            for (Shuffle s : values()) {
                if (s.name().equalsIgnoreCase(value.trim())) {
                    return s;
                }
            }
            throw new IllegalArgumentException("unknown shuffle '" + value + "'; use none, shards or global");
        }

        public String userName() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /**
     * {@code shuffle} null: {@code SHARDS} when a seed is given, else {@code NONE} (the options
     * before {@code --shuffle} existed). A shuffle without a seed uses seed 0.
     */
    public record Options(String modelDir, String tokens, List<String> hooks, DType dtype, int batchSequences,
                          int shardSequences, Long shuffleSeed, boolean skipBos, boolean skipSpecial,
                          String output, boolean overwrite, Fault fault, int faultShard, long heldOutSequences,
                          Shuffle shuffle)
            implements Serializable {

        public Options {
            if (shuffle == null) {
                shuffle = shuffleSeed == null ? Shuffle.NONE : Shuffle.SHARDS;
            }
            if (shuffle == Shuffle.NONE && shuffleSeed != null) {
                throw new IllegalArgumentException("--shuffle-seed " + shuffleSeed + " with --shuffle none; pass --shuffle shards"
                        + " or --shuffle global, or leave the seed out");
            }
            if (shuffle != Shuffle.NONE && shuffleSeed == null) {
                shuffleSeed = 0L;
            }
        }

        public Options(String modelDir, String tokens, List<String> hooks, DType dtype, int batchSequences,
                       int shardSequences, Long shuffleSeed, boolean skipBos, boolean skipSpecial,
                       String output, boolean overwrite, Fault fault, int faultShard, long heldOutSequences) {
            this(modelDir, tokens, hooks, dtype, batchSequences, shardSequences, shuffleSeed, skipBos, skipSpecial, output,
                    overwrite, fault, faultShard, heldOutSequences, null);
        }

        /** Every sequence of the table cached. */
        public Options(String modelDir, String tokens, List<String> hooks, DType dtype, int batchSequences,
                       int shardSequences, Long shuffleSeed, boolean skipBos, boolean skipSpecial, String output,
                       boolean overwrite, Fault fault, int faultShard) {
            this(modelDir, tokens, hooks, dtype, batchSequences, shardSequences, shuffleSeed, skipBos, skipSpecial, output,
                    overwrite, fault, faultShard, 0);
        }

        /** The same run with another row order. */
        public Options withShuffle(Shuffle value, Long seed) {
            return new Options(modelDir, tokens, hooks, dtype, batchSequences, shardSequences, seed, skipBos,
                    skipSpecial, output, overwrite, fault, faultShard, heldOutSequences, value);
        }

        public Options withFault(Fault value, int shard) {
            return new Options(modelDir, tokens, hooks, dtype, batchSequences, shardSequences, shuffleSeed, skipBos,
                    skipSpecial, output, overwrite, value, shard, heldOutSequences, shuffle);
        }

        /** The same settings for another token table and output (a part of an accumulated cache). */
        public Options forPart(String partTokens, String partOutput) {
            return new Options(modelDir, partTokens, hooks, dtype, batchSequences, shardSequences, shuffleSeed, skipBos,
                    skipSpecial, partOutput, false, fault, faultShard, heldOutSequences, shuffle);
        }

        /** The same run leaving the table's last {@code sequences} out of the cache (held out for evaluation). */
        public Options withHeldOut(long sequences) {
            return new Options(modelDir, tokens, hooks, dtype, batchSequences, shardSequences, shuffleSeed, skipBos,
                    skipSpecial, output, overwrite, fault, faultShard, sequences, shuffle);
        }
    }

    /**
     * A finished cache and how its stage spent its time, summed over this run's tasks: running the
     * model, encoding and writing Parquet, and everything in the tasks (reading tokens included).
     */
    public record Result(ActivationManifest manifest, long computedRows, int resumedShards, double forwardSeconds,
                         double writeSeconds, double taskSeconds, double wallSeconds, double shuffleSeconds) {

        /** Share of task time spent encoding and writing Parquet. */
        public double writeShare() {
            return taskSeconds == 0 ? 0 : writeSeconds / taskSeconds;
        }

        public double tokensPerSecond() {
            return wallSeconds == 0 ? 0 : computedRows / wallSeconds;
        }
    }

    /** One task's rows and time split, in nanoseconds (a class: Spark's Kryo cannot serialize records). */
    static final class ShardTiming implements Serializable {
        final long rows;
        final long forwardNanos;
        final long writeNanos;
        final long taskNanos;

        ShardTiming(long rows, long forwardNanos, long writeNanos, long taskNanos) {
            this.rows = rows;
            this.forwardNanos = forwardNanos;
            this.writeNanos = writeNanos;
            this.taskNanos = taskNanos;
        }
    }

    /** What a run is, recorded in the partial directory so only the same run resumes there. */
    record RunIdentity(String modelChecksum, String tokens, long sequences, List<String> hooks, String dtype,
                       int shardSequences, Long shuffleSeed, boolean skipBos, boolean skipSpecial, long heldOutSequences,
                       String shuffle) {
    }

    static final String RUN_FILE = "_run.json";
    /** With {@code --shuffle global}: the unshuffled shards, inside the partial directory (hidden from readers). */
    static final String UNSHUFFLED_DIR = "_unshuffled";
    /** Written once every shuffled shard is committed: a resumed run goes straight to the manifest. */
    static final String SHUFFLED_MARKER = "_shuffled";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Rows the shuffle's writer encodes at a time. */
    static final int SHUFFLE_BATCH_ROWS = 1024;

    private CacheJob() {
    }

    /** Every hook of a model worth caching: all but the logits (vocabulary-wide; ask for it by name). */
    public static List<String> allHooks(ModelConfig config) {
        List<String> names = new ArrayList<>();
        for (HookPoint h : HookPoint.all(config)) {
            if (h.kind() != HookPoint.Kind.LOGITS) {
                names.add(h.name());
            }
        }
        return names;
    }

    public static Result run(SparkSession spark, Options o) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        java.nio.file.Path localModel = ExecutorResources.localDirectory(o.modelDir());
        ModelConfig config = ModelConfig.load(localModel);
        List<String> hookNames = o.hooks().size() == 1 && o.hooks().get(0).equals("all") ? allHooks(config) : o.hooks();
        List<HookPoint> hooks = HookPoint.parseAll(hookNames, config);
        List<String> canonical = hooks.stream().map(HookPoint::name).toList();
        int[] dims = hooks.stream().mapToInt(h -> h.dim(config)).toArray();
        PackedVectors.checkFloat(o.dtype());
        if (o.batchSequences() < 1 || o.shardSequences() < 1) {
            throw new IllegalArgumentException("--batch-sequences and --shard-sequences must be at least 1");
        }

        Path tokensDir = new Path(o.tokens());
        TokenTableManifest tokens = TokenTableManifest.readChecked(hadoop, tokensDir);
        if (tokens.contextSize() > config.maxPositions()) {
            throw new IllegalArgumentException("the token table's sequences have " + tokens.contextSize()
                    + " tokens, more than the model's context of " + config.maxPositions() + "; re-tokenize with a smaller --context-size");
        }
        String tokenizerSha = ModelChecksums.file(localModel.resolve("tokenizer.json"));
        if (tokens.tokenizerSha256() != null && !tokens.tokenizerSha256().equals(tokenizerSha)) {
            throw new IllegalArgumentException("the token table was made with another tokenizer than " + o.modelDir()
                    + "'s; tokenize the corpus with this model");
        }
        String modelChecksum = ModelChecksums.model(localModel);

        try {
            Path out = new Path(o.output());
            FileSystem fs = out.getFileSystem(hadoop);
            out = fs.makeQualified(out);
            if (fs.exists(new Path(out, ActivationManifest.FILE_NAME)) && !o.overwrite()) {
                throw new IllegalArgumentException("output " + o.output() + " already holds a complete activation cache; "
                        + "choose another --out or pass --overwrite");
            }
            // Where renames are atomic, a hidden directory renamed into place at the end; on an object
            // store the output itself, whose manifest (written last) is what makes it a cache.
            boolean inPlace = activations.table.CommitProtocol.of(fs, hadoop) == activations.table.CommitProtocol.MARKER;
            Path partial = inPlace ? out : new Path(out.getParent(), "." + out.getName() + ".partial");
            RunIdentity identity = new RunIdentity(modelChecksum, fs.makeQualified(tokensDir).toString(), tokens.sequences(),
                    canonical, o.dtype().userName(), o.shardSequences(), o.shuffleSeed(), o.skipBos(), o.skipSpecial(),
                    o.heldOutSequences(), o.shuffle().userName());
            prepareRunDirectory(fs, partial, identity, o.overwrite());

            if (o.heldOutSequences() < 0 || o.heldOutSequences() >= tokens.sequences()) {
                throw new IllegalArgumentException("cannot hold out " + o.heldOutSequences() + " of the table's "
                        + tokens.sequences() + " sequences; hold out fewer (evaluate-sequences) or tokenize more text");
            }
            long cachedSequences = tokens.sequences() - o.heldOutSequences();
            long firstHeldOut = tokens.firstSeqId() + cachedSequences;
            int numShards = (int) Math.max(1, (cachedSequences + o.shardSequences() - 1) / o.shardSequences());
            boolean global = o.shuffle() == Shuffle.GLOBAL;
            // Globally shuffled: the model's shards go to a hidden directory first, then the shuffle writes the cache.
            Path computed = global ? new Path(partial, UNSHUFFLED_DIR) : partial;
            boolean shuffledAlready = global && fs.exists(new Path(partial, SHUFFLED_MARKER));
            Set<Integer> done = shuffledAlready ? allShards(numShards) : committedShards(hadoop, computed);
            Broadcast<SerializableConfiguration> conf = JavaSparkContext.fromSparkContext(spark.sparkContext())
                    .broadcast(new SerializableConfiguration(hadoop));
            String partialDir = computed.toString();
            Integer bos = tokens.bosId();
            int separator = tokens.separatorId();
            long seed = o.shuffleSeed() == null ? 0 : o.shuffleSeed();
            boolean shuffle = o.shuffle() == Shuffle.SHARDS;
            long firstSeqId = tokens.firstSeqId();

            JavaPairRDD<Integer, Tuple2<Long, int[]>> byShard = spark.read().parquet(tokens.dataPaths(tokensDir))
                    .select(col("seq_id"), col("tokens")).where(col("seq_id").lt(firstHeldOut)).javaRDD()
                    .mapToPair(row -> {
                        long seq = row.getLong(0);
                        int shard = shardOf(seq - firstSeqId, o.shardSequences(), numShards, shuffle, seed);
                        return new Tuple2<>(shard, new Tuple2<>(seq, toIntArray(row)));
                    })
                    .filter(pair -> !done.contains(pair._1()))
                    .partitionBy(new ShardPartitioner(numShards));

            long started = System.nanoTime();
            List<ShardTiming> timings = byShard.mapPartitionsWithIndex((shard, rows) -> {
                List<ShardTiming> result = new ArrayList<>();
                if (rows.hasNext()) {
                    result.add(computeShard(shard, rows, o, canonical, dims, bos, separator, conf.value().value(),
                            new Path(partialDir)));
                }
                return result.iterator();
            }, true).collect();
            long computedRows = timings.stream().mapToLong(t -> t.rows).sum();

            // Losing attempts of retried or speculative tasks can leave temp files; every task is done now.
            long expectedRows = expectedRows(spark, tokens.dataPaths(tokensDir), o, bos, separator, firstHeldOut);
            double shuffleSeconds = 0;
            if (global && !shuffledAlready) {
                ActivationManifest.deleteLeftovers(hadoop, computed);
                long unshuffled = ActivationManifest.listCommittedShards(hadoop, computed).rows();
                if (unshuffled != expectedRows) {
                    throw new IllegalStateException("the unshuffled cache at " + computed + " holds " + unshuffled + " rows but "
                            + expectedRows + " were expected; remove " + partial + " (or pass --overwrite) and run again");
                }
                long shuffleStart = System.nanoTime();
                GlobalShuffle.run(spark, conf, computed, partial, canonical, dims, o.dtype(), seed, numShards,
                        committedShards(hadoop, partial), SHUFFLE_BATCH_ROWS, o.fault(), o.faultShard());
                shuffleSeconds = (System.nanoTime() - shuffleStart) / 1e9;
                fs.create(new Path(partial, SHUFFLED_MARKER), true).close();
            }
            if (global) {
                fs.delete(computed, true);
            }
            ActivationManifest.deleteLeftovers(hadoop, partial);
            ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(hadoop, partial);
            if (committed.rows() != expectedRows) {
                throw new IllegalStateException("the cache at " + partial + " holds " + committed.rows() + " rows but "
                        + expectedRows + " were expected; remove it (or pass --overwrite) and run again");
            }
            String skipped = describeSkipped(o, bos);
            ActivationManifest manifest = ActivationManifest.of(config.architecture() + ":" + localModel.getFileName(),
                    modelChecksum, tokens.contextSize(), identity.tokens(), o.shuffleSeed(), skipped, committed);
            manifest.write(fs, partial);
            publish(fs, partial, out);
            double seconds = (System.nanoTime() - started) / 1e9;
            Result result = new Result(manifest, computedRows, done.size(),
                    timings.stream().mapToLong(t -> t.forwardNanos).sum() / 1e9,
                    timings.stream().mapToLong(t -> t.writeNanos).sum() / 1e9,
                    timings.stream().mapToLong(t -> t.taskNanos).sum() / 1e9, seconds, shuffleSeconds);
            org.slf4j.LoggerFactory.getLogger(CacheJob.class).info(String.format(Locale.ROOT,
                    "cached %,d tokens (%,d computed now, %d shards resumed) in %.1f s: %.0f tokens/s, %.1f%% of task time writing Parquet%s",
                    committed.rows(), computedRows, done.size(), seconds, result.tokensPerSecond(), 100 * result.writeShare(),
                    global ? String.format(Locale.ROOT, ", global shuffle %.1f s", shuffleSeconds) : ""));
            return result;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the activation cache " + o.output() + ": " + e.getMessage(), e);
        }
    }

    /** One task: the shard's sequences through the model, rows out through the exactly-once writer. */
    static ShardTiming computeShard(int shard, Iterator<Tuple2<Integer, Tuple2<Long, int[]>>> rows, Options o,
                                     List<String> hooks, int[] dims, Integer bos, int separator, Configuration conf,
                                     Path dir) {
        long taskStart = System.nanoTime();
        List<Tuple2<Long, int[]>> sequences = new ArrayList<>();
        rows.forEachRemaining(r -> sequences.add(r._2()));
        sequences.sort((a, b) -> Long.compare(a._1(), b._1()));
        TaskContext task = TaskContext.get();
        if (task != null) {
            // Each task owns spark.task.cpus cores: ND4J's OpenMP pool must not spread wider, or two tasks
            // on two cores run slower than one (measured; see the README's cluster settings).
            ComputeThreads.limit(task.cpus());
        }
        TransformerModel model = ExecutorResources.model(o.modelDir(), GpuAssignment.bindTaskDevice(task));
        List<HookPoint> points = HookPoint.parseAll(hooks, model.config());
        int attempt = task == null ? 0 : task.attemptNumber();

        ActivationShardWriter writer = ActivationShardWriter.open(conf,
                new Path(dir, ActivationShardWriter.shardFileName(shard)), hooks, dims, o.dtype());
        try {
            ShardRows shardRows = new ShardRows(hooks.size(), dims);
            long forwardNanos = 0;
            long writeNanos = 0;
            for (int from = 0; from < sequences.size(); from += o.batchSequences()) {
                int to = Math.min(sequences.size(), from + o.batchSequences());
                List<Tuple2<Long, int[]>> batch = sequences.subList(from, to);
                // A batch runs sequences of equal length; only a kept partial last sequence differs.
                int length = batch.get(0)._2().length;
                long forwardStart = System.nanoTime();
                List<Tuple2<Long, int[]>> sameLength = new ArrayList<>();
                for (Tuple2<Long, int[]> s : batch) {
                    if (s._2().length == length) {
                        sameLength.add(s);
                    } else {
                        runBatch(model, points, List.of(s), o, bos, separator, shardRows);
                    }
                }
                runBatch(model, points, sameLength, o, bos, separator, shardRows);
                long writeStart = System.nanoTime();
                forwardNanos += writeStart - forwardStart;
                if (o.shuffle() != Shuffle.SHARDS) {
                    shardRows.flushTo(writer);
                }
                writeNanos += System.nanoTime() - writeStart;
                if (o.fault() != Fault.NONE && o.shuffle() != Shuffle.GLOBAL && shard == o.faultShard() && from == 0
                        && o.fault() == Fault.BEFORE_COMMIT && attempt == 0) {
                    throw new IllegalStateException("injected fault: shard " + shard + " attempt 0 dies before commit");
                }
                if (o.fault() == Fault.ALWAYS && o.shuffle() != Shuffle.GLOBAL && shard == o.faultShard()) {
                    throw new IllegalStateException("injected fault: shard " + shard + " always dies");
                }
            }
            if (o.shuffle() == Shuffle.SHARDS) {
                shardRows.shuffle(new SplittableRandom(o.shuffleSeed() ^ (0x9E3779B97F4A7C15L * (shard + 1))));
            }
            long writeStart = System.nanoTime();
            shardRows.flushTo(writer);
            ShardSummary summary = writer.commit();
            writeNanos += System.nanoTime() - writeStart;
            if (o.fault() == Fault.AFTER_COMMIT && o.shuffle() != Shuffle.GLOBAL && shard == o.faultShard() && attempt == 0) {
                throw new IllegalStateException("injected fault: shard " + shard + " attempt 0 dies after commit");
            }
            return new ShardTiming(summary.rows(), forwardNanos, writeNanos, System.nanoTime() - taskStart);
        } catch (RuntimeException e) {
            writer.abort();
            throw e;
        }
    }

    private static void runBatch(TransformerModel model, List<HookPoint> points, List<Tuple2<Long, int[]>> batch,
                                 Options o, Integer bos, int separator, ShardRows out) {
        if (batch.isEmpty()) {
            return;
        }
        int[][] tokens = new int[batch.size()][];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = batch.get(i)._2();
        }
        ForwardResult result = model.forward(tokens, ForwardRequest.capture(points));
        int seqLen = tokens[0].length;
        for (int b = 0; b < tokens.length; b++) {
            for (int t = 0; t < seqLen; t++) {
                int token = tokens[b][t];
                if (skipped(t, token, o.skipBos(), o.skipSpecial(), bos, separator)) {
                    continue;
                }
                out.add(batch.get(b)._1(), t, token, result, points, b);
            }
        }
    }

    static int shardOf(long seq, int shardSequences, int numShards, boolean shuffle, long seed) {
        if (!shuffle) {
            return (int) Math.min(numShards - 1, seq / shardSequences);
        }
        // A seeded hash spreads sequences over shards: each shard holds sequences from the whole corpus.
        return (int) Math.floorMod(mix64(seq ^ seed * 0x9E3779B97F4A7C15L), (long) numShards);
    }

    private static long mix64(long z) {
        z = (z ^ (z >>> 33)) * 0xff51afd7ed558ccdL;
        z = (z ^ (z >>> 33)) * 0xc4ceb9fe1a85ec53L;
        return z ^ (z >>> 33);
    }

    private static int[] toIntArray(Row row) {
        List<Integer> list = row.getList(1);
        int[] out = new int[list.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = list.get(i);
        }
        return out;
    }

    /** Rows the cache must hold: every token of the table less the skipped positions. */
    private static long expectedRows(SparkSession spark, String[] tokenPaths, Options o, Integer bos, int separator,
                                     long firstHeldOut) {
        boolean skipBos = o.skipBos();
        boolean skipSpecial = o.skipSpecial();
        return spark.read().parquet(tokenPaths)
                .where(col("seq_id").lt(firstHeldOut)).select(col("tokens")).javaRDD().map(row -> {
            List<Integer> tokens = row.getList(0);
            long kept = 0;
            for (int t = 0; t < tokens.size(); t++) {
                if (!skipped(t, tokens.get(t), skipBos, skipSpecial, bos, separator)) {
                    kept++;
                }
            }
            return kept;
        }).fold(0L, Long::sum);
    }

    static boolean skipped(int position, int token, boolean skipBos, boolean skipSpecial, Integer bos, int separator) {
        boolean isBos = bos != null && token == bos;
        return (skipBos && position == 0 && isBos) || (skipSpecial && (isBos || token == separator));
    }

    private static String describeSkipped(Options o, Integer bos) {
        List<String> parts = new ArrayList<>();
        if (o.skipBos() && bos != null) {
            parts.add("pos 0 when it is BOS (" + bos + ")");
        }
        if (o.skipSpecial()) {
            parts.add("BOS and separator tokens at every position");
        }
        if (o.heldOutSequences() > 0) {
            parts.add("the token table's last " + o.heldOutSequences() + " sequences (held out for evaluation)");
        }
        return parts.isEmpty() ? null : String.join("; ", parts);
    }

    private static Set<Integer> allShards(int n) {
        Set<Integer> all = new HashSet<>();
        for (int i = 0; i < n; i++) {
            all.add(i);
        }
        return all;
    }

    private static Set<Integer> committedShards(Configuration conf, Path partial) {
        Set<Integer> done = new HashSet<>();
        for (ShardSummary s : ActivationManifest.listCommittedShards(conf, partial).shards()) {
            String name = s.file();
            done.add(Integer.parseInt(name.substring("part-".length(), name.indexOf('.'))));
        }
        return done;
    }

    private static void prepareRunDirectory(FileSystem fs, Path partial, RunIdentity identity, boolean overwrite) throws IOException {
        Path runFile = new Path(partial, RUN_FILE);
        if (fs.exists(partial)) {
            RunIdentity previous = null;
            if (fs.exists(runFile)) {
                try (FSDataInputStream in = fs.open(runFile)) {
                    previous = JSON.readValue((java.io.InputStream) in, RunIdentity.class);
                } catch (IOException e) {
                    previous = null;
                }
            }
            if (identity.equals(previous) && !overwrite) {
                return; // resume: committed shards stay
            }
            if (!overwrite && previous != null) {
                throw new IllegalArgumentException("an interrupted run with other settings is at " + partial
                        + " (" + previous + "); pass --overwrite to discard it");
            }
            fs.delete(new Path(partial, ActivationManifest.FILE_NAME), false); // no longer a complete cache, first
            fs.delete(partial, true);
        }
        fs.mkdirs(partial);
        try (FSDataOutputStream out = fs.create(runFile, true)) {
            JSON.writeValue((java.io.OutputStream) out, identity);
        }
    }

    private static void publish(FileSystem fs, Path partial, Path out) throws IOException {
        fs.delete(new Path(partial, RUN_FILE), false);
        if (partial.equals(out)) {
            return; // written in place: the manifest already marks it complete
        }
        Path old = null;
        if (fs.exists(out)) {
            old = new Path(out.getParent(), "." + out.getName() + ".old-" + System.nanoTime());
            if (!fs.rename(out, old)) {
                throw new IOException("cannot move the old output " + out + " aside");
            }
        }
        if (!fs.rename(partial, out)) {
            throw new IOException("cannot rename " + partial + " to " + out);
        }
        if (old != null) {
            fs.delete(old, true);
        }
    }

    /** Partition i holds shard i. */
    static final class ShardPartitioner extends Partitioner {
        private final int shards;

        ShardPartitioner(int shards) {
            this.shards = shards;
        }

        @Override
        public int numPartitions() {
            return shards;
        }

        @Override
        public int getPartition(Object key) {
            return (Integer) key;
        }
    }
}
