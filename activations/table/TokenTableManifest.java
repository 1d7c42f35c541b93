package activations.table;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.List;

/**
 * {@code _manifest.json} of a token table: Parquet rows {@code seq_id BIGINT, tokens ARRAY<INT>,
 * doc_ids ARRAY<BIGINT>}, every sequence exactly {@code contextSize} tokens (the last one may be
 * shorter when {@code keepPartial}), BOS first when {@code bosId} is set, documents joined by
 * {@code separatorId}. Written last: its presence marks the table complete. Seq ids run from
 * {@code firstSeqId} (0 for a table of its own).
 *
 * <p>An accumulated table (incremental pipeline runs) has {@code parts}: its rows live in one
 * complete token table per corpus file, in subdirectories, each with its own range of seq ids, and
 * the counts here are their sums. Readers take the Parquet paths from {@link #dataPaths}.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
@JsonInclude(JsonInclude.Include.NON_NULL)
public record TokenTableManifest(
        String kind,
        int formatVersion,
        String modelDir,
        String tokenizerSha256,
        int contextSize,
        Integer bosId,
        int separatorId,
        long sequences,
        long tokens,
        long documents,
        String input,
        String inputFormat,
        String textSplit,
        boolean keepPartial,
        String createdAt,
        String spindleVersion,
        long firstSeqId,
        List<Part> parts) {

    /**
     * One corpus file of an accumulated table: its token table in subdirectory {@code dir}, the file
     * it came from with the size and modification time it had (a corpus file is immutable once
     * cached), and its seq ids {@code firstSeqId .. firstSeqId + sequences - 1}.
     */
    public record Part(String dir, String input, long inputBytes, long inputModified, long firstSeqId, long sequences,
                       long tokens, long documents) {
    }

    public static final String FILE = "_manifest.json";
    public static final String KIND = "token-table";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** A single table's manifest (no parts), as `spindle tokenize` writes it. */
    public TokenTableManifest(String kind, int formatVersion, String modelDir, String tokenizerSha256, int contextSize,
                              Integer bosId, int separatorId, long sequences, long tokens, long documents, String input,
                              String inputFormat, String textSplit, boolean keepPartial, String createdAt,
                              String spindleVersion) {
        this(kind, formatVersion, modelDir, tokenizerSha256, contextSize, bosId, separatorId, sequences, tokens, documents,
                input, inputFormat, textSplit, keepPartial, createdAt, spindleVersion, 0, null);
    }

    /** The accumulated table over {@code parts} (in arrival order), taking the shared settings from {@code first}. */
    public static TokenTableManifest accumulated(TokenTableManifest first, String input, List<Part> parts) {
        long sequences = 0;
        long tokens = 0;
        long documents = 0;
        for (Part p : parts) {
            sequences += p.sequences();
            tokens += p.tokens();
            documents += p.documents();
        }
        return new TokenTableManifest(KIND, first.formatVersion(), first.modelDir(), first.tokenizerSha256(),
                first.contextSize(), first.bosId(), first.separatorId(), sequences, tokens, documents, input,
                first.inputFormat(), first.textSplit(), first.keepPartial(), java.time.Instant.now().toString(),
                first.spindleVersion(), parts.isEmpty() ? 0 : parts.get(0).firstSeqId(), List.copyOf(parts));
    }

    /** The directories holding this table's Parquet files: {@code dir} itself, or its parts' subdirectories. */
    public String[] dataPaths(Path dir) {
        if (parts == null) {
            return new String[] {dir.toString()};
        }
        return parts.stream().map(p -> new Path(dir, p.dir()).toString()).toArray(String[]::new);
    }

    /** Writes {@code dir/_manifest.json} atomically, replacing an older one (an accumulated table grows). */
    public void write(Configuration conf, Path dir) {
        Path target = new Path(dir, FILE);
        try {
            TableFiles.writeAtomically(TableFiles.writableFileSystem(dir, conf), target, JSON.writeValueAsBytes(this));
        } catch (IOException e) {
            throw TableFiles.io("writing", target, e);
        }
    }

    /**
     * Reads the manifest and checks that every Parquet file of the table has an intact footer, so a
     * truncated or corrupt file is reported by name before any work starts.
     */
    public static TokenTableManifest readChecked(Configuration conf, Path dir) {
        TokenTableManifest manifest = read(conf, dir);
        for (String data : manifest.dataPaths(dir)) {
            checkFooters(conf, new Path(data));
        }
        return manifest;
    }

    private static void checkFooters(Configuration conf, Path dir) {
        try {
            FileSystem fs = dir.getFileSystem(conf);
            if (!fs.exists(dir)) {
                throw new IllegalArgumentException("token table part " + dir + " is missing; restore it or re-create the "
                        + "accumulated cache");
            }
            for (org.apache.hadoop.fs.FileStatus status : fs.listStatus(dir)) {
                String name = status.getPath().getName();
                if (!status.isFile() || TableFiles.isHidden(name) || !name.endsWith(".parquet")) {
                    continue;
                }
                try (org.apache.parquet.hadoop.ParquetFileReader reader = org.apache.parquet.hadoop.ParquetFileReader.open(
                        org.apache.parquet.hadoop.util.HadoopInputFile.fromStatus(status, conf))) {
                    reader.getFooter();
                } catch (IOException | RuntimeException e) {
                    throw new IllegalArgumentException("token table file " + status.getPath() + " is corrupt or truncated ("
                            + TableFiles.oneLine(e) + "); re-run `spindle tokenize` with --overwrite");
                }
            }
        } catch (IOException e) {
            throw TableFiles.io("listing token table", dir, e);
        }
    }

    public static TokenTableManifest read(Configuration conf, Path dir) {
        Path file = new Path(dir, FILE);
        try {
            FileSystem fs = dir.getFileSystem(conf);
            if (!fs.exists(dir)) {
                throw new IllegalArgumentException("token table " + dir + " does not exist; run `spindle tokenize` first");
            }
            try (FSDataInputStream in = fs.open(file)) {
                TokenTableManifest m = JSON.readValue((java.io.InputStream) in, TokenTableManifest.class);
                if (!KIND.equals(m.kind())) {
                    throw new IllegalArgumentException(dir + " is not a token table (its manifest says '" + m.kind()
                            + "'); pass the output of `spindle tokenize`");
                }
                return m;
            }
        } catch (FileNotFoundException e) {
            throw new IllegalArgumentException(dir + " is not a complete token table (no " + FILE
                    + "); re-run `spindle tokenize`");
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": unreadable manifest (" + TableFiles.oneLine(e) + "); re-run `spindle tokenize`");
        }
    }
}
