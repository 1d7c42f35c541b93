package jobs.output;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.RawLocalFileSystem;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Plain-Java outputs published on a local path and on a filesystem that is not {@code file:} (the copy path). */
class StagedOutputTest {

    /** Local disk under another scheme, so the code takes the path it takes for HDFS or S3. */
    public static final class RemoteLikeFileSystem extends RawLocalFileSystem {
        @Override
        public URI getUri() {
            return URI.create("remotelike:///");
        }
    }

    static Configuration conf() {
        Configuration conf = new Configuration();
        conf.set("fs.remotelike.impl", RemoteLikeFileSystem.class.getName());
        conf.setBoolean("fs.remotelike.impl.disable.cache", true);
        return conf;
    }

    @Test
    void directoriesAppearWholeOnBothKindsOfFilesystem(@TempDir Path dir) throws IOException {
        for (String target : new String[] {dir.resolve("local").toString(), "remotelike://" + dir.resolve("remote")}) {
            StagedOutput.directory(conf(), target, "done.json", false, out -> write(out.resolve("done.json"), "1"));
            Path written = Path.of(URI.create(target.startsWith("remotelike") ? target.replace("remotelike:", "file:") : "file://" + target));
            assertEquals("1", Files.readString(written.resolve("done.json")));
            assertThrows(IllegalArgumentException.class,
                    () -> StagedOutput.directory(conf(), target, "done.json", false, out -> write(out.resolve("done.json"), "2")));
            // a failing writer leaves the complete output as it was
            assertThrows(IllegalStateException.class, () -> StagedOutput.directory(conf(), target, "done.json", true, out -> {
                write(out.resolve("done.json"), "3");
                throw new IllegalStateException("writer failed");
            }));
            assertEquals("1", Files.readString(written.resolve("done.json")));
            StagedOutput.directory(conf(), target, "done.json", true, out -> write(out.resolve("done.json"), "4"));
            assertEquals("4", Files.readString(written.resolve("done.json")));
        }
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "no staging leftovers");
        }
    }

    @Test
    void singleFilesAreReplacedOnlyWhenAsked(@TempDir Path dir) throws IOException {
        for (String target : new String[] {dir.resolve("a.json").toString(), "remotelike://" + dir.resolve("b.json")}) {
            StagedOutput.file(conf(), target, false, f -> write(f, "x"));
            Path written = dir.resolve(target.endsWith("a.json") ? "a.json" : "b.json");
            assertEquals("x", Files.readString(written));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> StagedOutput.file(conf(), target, false, f -> write(f, "y")));
            assertTrue(e.getMessage().contains("--overwrite"), e.getMessage());
            StagedOutput.file(conf(), target, true, f -> write(f, "z"));
            assertEquals("z", Files.readString(written));
        }
        try (var files = Files.list(dir)) {
            assertFalse(files.anyMatch(p -> p.getFileName().toString().startsWith(".") && !p.toString().endsWith(".crc")),
                    "no temporary files left");
        }
    }

    private static void write(Path file, String text) {
        try {
            Files.writeString(file, text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
