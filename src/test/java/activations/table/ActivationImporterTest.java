package activations.table;

import activations.safetensors.DType;
import activations.safetensors.SafeTensorsWriter;
import jobs.cli.Spindle;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.List;
import java.util.Random;

import static activations.table.TableFixtures.conf;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ActivationImporterTest {

    private static final String HOOK = "blocks.3.hook_resid_post";

    @TempDir
    java.nio.file.Path tmp;

    /** A .npy file written per the format spec: magic, version 1.0, padded dict header, little-endian data. */
    static void writeNpy(java.nio.file.Path file, float[] data, int rows, int cols, boolean half, boolean fortran) throws IOException {
        String dict = "{'descr': '" + (half ? "<f2" : "<f4") + "', 'fortran_order': " + (fortran ? "True" : "False")
                + ", 'shape': (" + rows + ", " + cols + "), }";
        int unpadded = 10 + dict.length() + 1;
        int padding = (64 - unpadded % 64) % 64;
        String header = dict + " ".repeat(padding) + "\n";
        ByteBuffer out = ByteBuffer.allocate(10 + header.length() + data.length * (half ? 2 : 4)).order(ByteOrder.LITTLE_ENDIAN);
        out.put((byte) 0x93).put("NUMPY".getBytes(StandardCharsets.US_ASCII)).put((byte) 1).put((byte) 0);
        out.putShort((short) header.length()).put(header.getBytes(StandardCharsets.US_ASCII));
        for (float v : data) {
            if (half) {
                out.putShort(DType.floatToF16(v));
            } else {
                out.putFloat(v);
            }
        }
        Files.write(file, out.array());
    }

    private static float[] randomRows(int rows, int cols, long seed) {
        Random random = new Random(seed);
        float[] data = new float[rows * cols];
        for (int i = 0; i < data.length; i++) {
            data[i] = (float) (3 * random.nextGaussian());
        }
        return data;
    }

    private static float[] readHook(Path dir, int rows, int d, ActivationTableReader.RowMetadata meta) {
        try (ActivationTableReader reader = ActivationTableReader.open(conf(), dir, List.of(HOOK),
                ActivationTableReader.Options.DEFAULT.withRowMetadata())) {
            assertEquals(d, reader.dims()[0]);
            float[] out = new float[rows * d];
            FloatBuffer buffer = FloatBuffer.wrap(out);
            int n;
            while ((n = reader.read(new FloatBuffer[] {buffer}, 100, meta)) > 0) {
                assertTrue(n <= rows);
            }
            assertEquals(rows, reader.position());
            return out;
        }
    }

    @Test
    void importsNpyAndSafetensorsFilesIntoOneCache() throws IOException {
        int d = 12;
        float[] first = randomRows(150, d, 1);
        float[] second = randomRows(90, d, 2);
        float[] third = randomRows(40, d, 3);
        java.nio.file.Path npy32 = tmp.resolve("a.npy");
        java.nio.file.Path npy16 = tmp.resolve("b.npy");
        java.nio.file.Path st = tmp.resolve("c.safetensors");
        writeNpy(npy32, first, 150, d, false, false);
        writeNpy(npy16, second, 90, d, true, false);
        new SafeTensorsWriter().add("acts", DType.BF16, third, 40, d).add("other", DType.F32, new float[4], 2, 2).write(st);

        Path out = TableFixtures.path(tmp.resolve("cache"));
        ActivationManifest manifest = ActivationImporter.importFiles(conf(),
                List.of(new Path(npy32.toString()), new Path(npy16.toString()), new Path(st.toString())), out,
                new ActivationImporter.Options(HOOK, DType.F32, "acts", false));
        assertEquals("imported", manifest.modelId());
        assertEquals(280, manifest.tokenCount());
        assertEquals(3, manifest.shards().size());

        ActivationTableReader.RowMetadata meta = new ActivationTableReader.RowMetadata(280);
        float[] read = readHook(out, 280, d, meta);
        // float32 storage: equal to the inputs after their own (f16 / bf16) rounding
        for (int i = 0; i < 150 * d; i++) {
            assertEquals(first[i], read[i]);
        }
        for (int i = 0; i < 90 * d; i++) {
            assertEquals(DType.f16ToFloat(DType.floatToF16(second[i])), read[150 * d + i]);
        }
        for (int i = 0; i < 40 * d; i++) {
            assertEquals(DType.bf16ToFloat(DType.floatToBf16(third[i])), read[240 * d + i]);
        }
        for (int r = 0; r < 280; r++) {
            assertEquals(r, meta.seqIds[r]);
            assertEquals(0, meta.positions[r]);
            assertEquals(-1, meta.tokenIds[r]);
        }
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(), files.filter(p -> p.getFileName().toString().startsWith(".")).toList(),
                    "no staging directory is left behind");
        }
    }

    @Test
    void bfloat16CacheFromNpyIsWithinBfloat16Rounding() throws IOException {
        float[] data = randomRows(64, 5, 4);
        java.nio.file.Path npy = tmp.resolve("x.npy");
        writeNpy(npy, data, 64, 5, false, false);
        Path out = TableFixtures.path(tmp.resolve("cache"));
        ActivationImporter.importFiles(conf(), List.of(new Path(npy.toString())), out,
                new ActivationImporter.Options(HOOK, DType.BF16, null, false));
        float[] read = readHook(out, 64, 5, new ActivationTableReader.RowMetadata(64));
        for (int i = 0; i < data.length; i++) {
            assertEquals(data[i], read[i], Math.abs(data[i]) * 0x1p-8);
        }
    }

    @Test
    void refusesToReplaceACompleteCacheUnlessOverwriteAndKeepsItIntactWhenRefusing() throws IOException {
        java.nio.file.Path npy = tmp.resolve("x.npy");
        writeNpy(npy, randomRows(30, 4, 5), 30, 4, false, false);
        java.nio.file.Path bigger = tmp.resolve("y.npy");
        writeNpy(bigger, randomRows(50, 4, 6), 50, 4, false, false);
        Path out = TableFixtures.path(tmp.resolve("cache"));
        ActivationImporter.Options options = new ActivationImporter.Options(HOOK, DType.BF16, null, false);
        ActivationImporter.importFiles(conf(), List.of(new Path(npy.toString())), out, options);

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationImporter.importFiles(conf(), List.of(new Path(bigger.toString())), out, options));
        assertTrue(e.getMessage().contains("already holds a complete activation cache") && e.getMessage().contains("--overwrite"),
                e.getMessage());
        assertEquals(30, ActivationManifest.read(conf(), out).tokenCount(), "the refused import changed nothing");

        ActivationImporter.importFiles(conf(), List.of(new Path(bigger.toString())), out,
                new ActivationImporter.Options(HOOK, DType.BF16, null, true));
        assertEquals(50, ActivationManifest.read(conf(), out).tokenCount());
    }

    @Test
    void badInputsFailWithOneLineBeforeWritingAnything() throws IOException {
        Path out = TableFixtures.path(tmp.resolve("cache"));
        ActivationImporter.Options options = new ActivationImporter.Options(HOOK, DType.BF16, null, false);

        java.nio.file.Path fortran = tmp.resolve("f.npy");
        writeNpy(fortran, randomRows(6, 4, 7), 6, 4, false, true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ActivationImporter.importFiles(conf(), List.of(new Path(fortran.toString())), out, options));
        assertTrue(e.getMessage().contains("Fortran order"), e.getMessage());

        java.nio.file.Path doubles = tmp.resolve("d.npy");
        writeNpy(doubles, randomRows(6, 4, 8), 6, 4, false, false);
        byte[] bytes = Files.readAllBytes(doubles);
        String text = new String(bytes, StandardCharsets.ISO_8859_1).replace("'<f4'", "'<f8'");
        Files.write(doubles, text.getBytes(StandardCharsets.ISO_8859_1));
        e = assertThrows(IllegalArgumentException.class,
                () -> ActivationImporter.importFiles(conf(), List.of(new Path(doubles.toString())), out, options));
        assertTrue(e.getMessage().contains("'<f8'") && e.getMessage().contains("float32"), e.getMessage());

        java.nio.file.Path several = tmp.resolve("s.safetensors");
        new SafeTensorsWriter().addF32("x", new float[8], 2, 4).addF32("y", new float[8], 2, 4).write(several);
        e = assertThrows(IllegalArgumentException.class,
                () -> ActivationImporter.importFiles(conf(), List.of(new Path(several.toString())), out, options));
        assertTrue(e.getMessage().contains("--tensor") && e.getMessage().contains("x") && e.getMessage().contains("y"), e.getMessage());

        java.nio.file.Path narrow = tmp.resolve("n.npy");
        writeNpy(narrow, randomRows(6, 3, 9), 6, 3, false, false);
        java.nio.file.Path wide = tmp.resolve("w.npy");
        writeNpy(wide, randomRows(6, 4, 9), 6, 4, false, false);
        e = assertThrows(IllegalArgumentException.class, () -> ActivationImporter.importFiles(conf(),
                List.of(new Path(narrow.toString()), new Path(wide.toString())), out, options));
        assertTrue(e.getMessage().contains("same width"), e.getMessage());

        assertFalse(Files.exists(tmp.resolve("cache")), "nothing was written");
    }

    @Test
    void cliImportsAndRefusesASecondImportWithoutOverwrite() throws IOException {
        java.nio.file.Path a = tmp.resolve("a.npy");
        java.nio.file.Path b = tmp.resolve("b.npy");
        writeNpy(a, randomRows(20, 6, 10), 20, 6, false, false);
        writeNpy(b, randomRows(25, 6, 11), 25, 6, true, false);
        String out = tmp.resolve("cache").toString();
        assertEquals(0, Spindle.run("import-activations", "--input", a + "," + b, "--hook", HOOK, "--out", out));
        ActivationManifest manifest = ActivationManifest.read(conf(), new Path(out));
        assertEquals(45, manifest.tokenCount());
        assertEquals("bfloat16", manifest.dtype());

        PrintStream stderr = System.err;
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        System.setErr(new PrintStream(captured, true, StandardCharsets.UTF_8));
        try {
            assertEquals(2, Spindle.run("import-activations", "--input", a.toString(), "--input", b.toString(),
                    "--hook", HOOK, "--out", out, "--dtype", "float16"));
        } finally {
            System.setErr(stderr);
        }
        assertTrue(captured.toString(StandardCharsets.UTF_8).contains("--overwrite"), captured.toString(StandardCharsets.UTF_8));
        assertEquals(0, Spindle.run("import-activations", "--input", a.toString(), "--input", b.toString(),
                "--hook", HOOK, "--out", out, "--dtype", "float16", "--overwrite"));
        assertEquals("float16", ActivationManifest.read(conf(), new Path(out)).dtype());
    }
}
