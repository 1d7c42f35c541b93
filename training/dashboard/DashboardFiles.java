package training.dashboard;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where the dashboard's files go, by path relative to the dashboard directory. The writer only
 * ever creates whole files through this, so a Hadoop {@code FileSystem} (HDFS, S3) target is one
 * more implementation, not a change to the writer.
 */
public interface DashboardFiles {

    /** Writes (creating or replacing) one complete file, e.g. {@code "features/shard-00003.js"}. */
    void write(String relativePath, String text) throws IOException;

    /** A local directory (created as needed). */
    static DashboardFiles directory(Path dir) {
        return (relativePath, text) -> {
            Path file = dir.resolve(relativePath);
            Files.createDirectories(file.getParent());
            Files.writeString(file, text, StandardCharsets.UTF_8);
        };
    }
}
