package activations.table;

import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The commit primitives on both code paths: the raw local file system and a generic Hadoop one. */
class TableFilesTest {

    @TempDir
    java.nio.file.Path tmp;

    private static void write(FileSystem fs, Path path, String text) throws IOException {
        try (FSDataOutputStream out = fs.create(path, false)) {
            out.write(text.getBytes(StandardCharsets.UTF_8));
        }
    }

    @Test
    void commitIfAbsentCreatesOnceAndNeverReplaces() throws IOException {
        FileSystem checksummed = FileSystem.getLocal(TableFixtures.conf()); // not RawLocalFileSystem: the rename path
        FileSystem raw = TableFiles.writableFileSystem(TableFixtures.path(tmp), TableFixtures.conf()); // the hard-link path
        for (FileSystem fs : new FileSystem[] {checksummed, raw}) {
            Path target = new Path(TableFixtures.path(tmp), "shard-" + fs.getClass().getSimpleName() + ".parquet");
            Path first = TableFiles.tempSibling(target);
            write(fs, first, "first");
            assertTrue(TableFiles.commitIfAbsent(fs, first, target));
            Path second = TableFiles.tempSibling(target);
            write(fs, second, "second");
            assertFalse(TableFiles.commitIfAbsent(fs, second, target));
            assertEquals("first", Files.readString(tmp.resolve(target.getName())));
            assertFalse(fs.exists(first) || fs.exists(second), "temp files are gone");
        }
    }

    @Test
    void writeAtomicallyReplaces() throws IOException {
        FileSystem checksummed = FileSystem.getLocal(TableFixtures.conf());
        FileSystem raw = TableFiles.writableFileSystem(TableFixtures.path(tmp), TableFixtures.conf());
        for (FileSystem fs : new FileSystem[] {checksummed, raw}) {
            Path target = new Path(TableFixtures.path(tmp), "_meta-" + fs.getClass().getSimpleName() + ".json");
            TableFiles.writeAtomically(fs, target, "one".getBytes(StandardCharsets.UTF_8));
            TableFiles.writeAtomically(fs, target, "two".getBytes(StandardCharsets.UTF_8));
            assertEquals("two", Files.readString(tmp.resolve(target.getName())));
        }
        try (var files = Files.list(tmp)) {
            assertEquals(0, files.filter(p -> p.getFileName().toString().endsWith(".tmp")).count(), "no temp files left");
        }
    }
}
