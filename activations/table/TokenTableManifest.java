package activations.table;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * {@code _manifest.json} of a token table: Parquet rows {@code seq_id BIGINT, tokens ARRAY<INT>,
 * doc_ids ARRAY<BIGINT>}, every sequence exactly {@code contextSize} tokens (the last one may be
 * shorter when {@code keepPartial}), BOS first when {@code bosId} is set, documents joined by
 * {@code separatorId}. Written last: its presence marks the table complete.
 */
@JsonIgnoreProperties(ignoreUnknown = true)
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
        String spindleVersion) {

    public static final String FILE = "_manifest.json";
    public static final String KIND = "token-table";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    public void write(Configuration conf, Path dir) {
        try {
            FileSystem fs = dir.getFileSystem(conf);
            Path temp = new Path(dir, "_" + FILE + ".tmp");
            try (FSDataOutputStream out = fs.create(temp, true)) {
                JSON.writeValue((java.io.OutputStream) out, this);
            }
            if (!fs.rename(temp, new Path(dir, FILE))) {
                throw new IOException("rename failed");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + new Path(dir, FILE) + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads the manifest and checks that every Parquet file of the table has an intact footer, so a
     * truncated or corrupt file is reported by name before any work starts.
     */
    public static TokenTableManifest readChecked(Configuration conf, Path dir) {
        TokenTableManifest manifest = read(conf, dir);
        try {
            FileSystem fs = dir.getFileSystem(conf);
            for (org.apache.hadoop.fs.FileStatus status : fs.listStatus(dir)) {
                String name = status.getPath().getName();
                if (!status.isFile() || name.startsWith("_") || name.startsWith(".") || !name.endsWith(".parquet")) {
                    continue;
                }
                try (org.apache.parquet.hadoop.ParquetFileReader reader = org.apache.parquet.hadoop.ParquetFileReader.open(
                        org.apache.parquet.hadoop.util.HadoopInputFile.fromStatus(status, conf))) {
                    reader.getFooter();
                } catch (IOException | RuntimeException e) {
                    throw new IllegalArgumentException("token table file " + status.getPath() + " is corrupt or truncated ("
                            + oneLine(e.getMessage()) + "); re-run `spindle tokenize` with --overwrite");
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list token table " + dir + ": " + e.getMessage(), e);
        }
        return manifest;
    }

    private static String oneLine(String message) {
        if (message == null) {
            return "unreadable";
        }
        int newline = message.indexOf('\n');
        return newline < 0 ? message : message.substring(0, newline);
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
            throw new IllegalArgumentException(file + ": unreadable manifest (" + e.getMessage() + ")");
        }
    }
}
