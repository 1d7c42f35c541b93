package jobs.pipeline;

import activations.table.ActivationManifest;
import activations.table.TokenTableManifest;
import jobs.cache.CacheJob;
import jobs.tokenize.TokenizeJob;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The accumulated cache of incremental (nightly) runs: each corpus file is tokenized and cached
 * once, into its own token table and activation cache, and the accumulated tables over all of them
 * are what training, evaluation and feature tables read.
 *
 * <pre>
 * cache/tokens/_manifest.json               accumulated token table: the ledger of parts, in arrival order
 * cache/tokens/parts/NNNNN-FILE/            token table of one corpus file (seq ids from NNNNN &lt;&lt; 32)
 * cache/activations/_manifest.json          accumulated cache: every part's shards, statistics merged
 * cache/activations/parts/NNNNN-FILE/       activation cache of one corpus file
 * </pre>
 *
 * A part's own tables are each published whole (the tokenize and cache jobs' guarantees); the two
 * accumulated manifests are rewritten after each part, activations first, so a run killed at any
 * point leaves complete tables, and the next run finds the part's finished work and only adds it to
 * the manifests. Corpus files are immutable once cached: a file whose size or modification time
 * changed is refused rather than silently cached twice.
 */
final class IncrementalCache {

    /** Seq ids of part {@code i} start at {@code i << PART_SHIFT}: room for 4 billion sequences per file. */
    static final int PART_SHIFT = 32;

    private IncrementalCache() {
    }

    static Path tokens(Path root) {
        return new Path(root, "tokens");
    }

    static Path activations(Path root) {
        return new Path(root, "activations");
    }

    /** Corpus files not yet in the accumulated cache under {@code root}; checks the cached ones are unchanged. */
    static List<FileStatus> newFiles(Configuration hadoop, Path root, String corpus) {
        List<TokenTableManifest.Part> ledger = ledger(hadoop, root);
        Map<String, TokenTableManifest.Part> cached = new HashMap<>();
        for (TokenTableManifest.Part part : ledger) {
            cached.put(part.input(), part);
        }
        List<FileStatus> fresh = new ArrayList<>();
        try {
            for (Path file : TokenizeJob.listInputFiles(hadoop, corpus)) {
                FileStatus status = file.getFileSystem(hadoop).getFileStatus(file);
                TokenTableManifest.Part part = cached.get(status.getPath().toString());
                if (part == null) {
                    fresh.add(status);
                } else if (part.inputBytes() != status.getLen() || part.inputModified() != status.getModificationTime()) {
                    throw new IllegalArgumentException("corpus file " + status.getPath() + " changed since it was cached (was "
                            + part.inputBytes() + " bytes, now " + status.getLen() + "); corpus files are append-only in "
                            + "incremental mode: add new files instead, or start a new output root");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list the corpus " + corpus + ": " + e.getMessage(), e);
        }
        return fresh;
    }

    /** Tokenizes and caches the corpus files {@link #newFiles} found, adding each to the accumulated cache. */
    static void add(SparkSession spark, Path root, List<FileStatus> fresh, TokenizeJob.Options tokenize,
                    CacheJob.Options cache, PrintStream progress) {
        Configuration hadoop = spark.sparkContext().hadoopConfiguration();
        List<TokenTableManifest.Part> ledger = new ArrayList<>(ledger(hadoop, root));
        for (FileStatus file : fresh) {
            int index = ledger.size();
            String dir = "parts/" + String.format(Locale.ROOT, "%05d-", index) + safeName(file.getPath().getName());
            long firstSeqId = (long) index << PART_SHIFT;
            Path tokenDir = new Path(tokens(root), dir);
            Path activationDir = new Path(activations(root), dir);
            progress.printf(Locale.ROOT, "   corpus file %s -> %s%n", file.getPath(), dir);

            TokenTableManifest partTokens = completeTokens(hadoop, tokenDir, file, firstSeqId);
            if (partTokens == null) {
                partTokens = TokenizeJob.run(spark, tokenize.forPart(file.getPath().toString(), tokenDir.toString(), firstSeqId));
            }
            if (!exists(hadoop, new Path(activationDir, ActivationManifest.FILE_NAME))) {
                CacheJob.run(spark, cache.forPart(tokenDir.toString(), activationDir.toString()));
            }
            ledger.add(new TokenTableManifest.Part(dir, file.getPath().toString(), file.getLen(), file.getModificationTime(),
                    firstSeqId, partTokens.sequences(), partTokens.tokens(), partTokens.documents()));
            writeManifests(hadoop, root, tokenize.input(), ledger);
        }
    }

    /** The parts already in the accumulated cache, in arrival order (empty for a new cache). */
    static List<TokenTableManifest.Part> ledger(Configuration hadoop, Path root) {
        if (!exists(hadoop, new Path(tokens(root), TokenTableManifest.FILE))) {
            return List.of();
        }
        TokenTableManifest m = TokenTableManifest.read(hadoop, tokens(root));
        if (m.parts() == null) {
            throw new IllegalArgumentException(tokens(root) + " holds a single token table, not an accumulated one; "
                    + "incremental runs need their own output root");
        }
        return m.parts();
    }

    /** The part's token table if a killed run already finished it for this file and seq range; null otherwise. */
    private static TokenTableManifest completeTokens(Configuration hadoop, Path dir, FileStatus file, long firstSeqId) {
        if (!exists(hadoop, new Path(dir, TokenTableManifest.FILE))) {
            return null;
        }
        TokenTableManifest m = TokenTableManifest.read(hadoop, dir);
        if (!m.input().equals(file.getPath().toString()) || m.firstSeqId() != firstSeqId) {
            throw new IllegalStateException(dir + " holds tokens of " + m.input() + ", not of " + file.getPath()
                    + "; remove " + dir + " and run again");
        }
        return m;
    }

    private static void writeManifests(Configuration hadoop, Path root, String corpus, List<TokenTableManifest.Part> ledger) {
        List<String> dirs = ledger.stream().map(TokenTableManifest.Part::dir).toList();
        List<ActivationManifest> caches = new ArrayList<>();
        for (String dir : dirs) {
            caches.add(ActivationManifest.read(hadoop, new Path(activations(root), dir)));
        }
        Path activationRoot = activations(root);
        try {
            ActivationManifest.accumulated(dirs, caches, qualified(hadoop, tokens(root)))
                    .write(activationRoot.getFileSystem(hadoop), activationRoot);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + activationRoot + ": " + e.getMessage(), e);
        }
        TokenTableManifest first = TokenTableManifest.read(hadoop, new Path(tokens(root), dirs.get(0)));
        TokenTableManifest.accumulated(first, corpus, ledger).write(hadoop, tokens(root));
    }

    /** A corpus file name as a directory name: letters, digits, '.', '_' and '-' kept. */
    static String safeName(String name) {
        String safe = name.replaceAll("[^A-Za-z0-9._-]", "_");
        return safe.length() > 80 ? safe.substring(0, 80) : safe;
    }

    private static boolean exists(Configuration hadoop, Path path) {
        try {
            return path.getFileSystem(hadoop).exists(path);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot check " + path + ": " + e.getMessage(), e);
        }
    }

    private static String qualified(Configuration hadoop, Path path) throws IOException {
        FileSystem fs = path.getFileSystem(hadoop);
        return fs.makeQualified(path).toString();
    }
}
