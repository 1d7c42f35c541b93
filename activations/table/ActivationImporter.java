package activations.table;

import activations.safetensors.DType;
import activations.safetensors.SafeTensors;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocalFileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

import java.io.Closeable;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.UUID;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Brings your own activations into an activation cache: {@code .npy} files (float32 or float16,
 * little-endian, C order, shape [n, d]) or {@code .safetensors} files (one [n, d] F32/F16/BF16
 * tensor, or the one named), one shard per input file, seq_id = running row index, pos = 0,
 * token_id = -1, model id "imported". The cache is built in a hidden sibling directory and moved
 * into place only when complete, so the output directory never holds half an import, and an
 * existing cache is replaced only with {@code overwrite} (and only once the new one is complete).
 */
public final class ActivationImporter {

    /** Target chunk size when streaming an input; rows are converted to fp32 a chunk at a time. */
    private static final int CHUNK_BYTES = 8 << 20;

    /**
     * @param hook       the hook name to store the vectors under (the column name)
     * @param dtype      the cache dtype (bfloat16, float16, float32)
     * @param tensorName for safetensors inputs holding several tensors, the one to import; null otherwise
     * @param overwrite  replace an existing cache in the output directory
     */
    public record Options(String hook, DType dtype, String tensorName, boolean overwrite) {
        public Options {
            if (hook == null || hook.isBlank()) {
                throw new IllegalArgumentException("a hook name is needed for imported activations (e.g. blocks.6.hook_resid_post)");
            }
            PackedVectors.checkFloat(dtype);
        }
    }

    private ActivationImporter() {
    }

    /** Imports {@code inputs} into the cache directory {@code out} and returns its manifest. */
    public static ActivationManifest importFiles(Configuration conf, List<Path> inputs, Path out, Options options) {
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("no input files given: pass one or more .npy or .safetensors files");
        }
        // Read every header first: a bad input fails before anything is written.
        List<Input> opened = new ArrayList<>();
        try {
            for (Path input : inputs) {
                Input in = Input.open(conf, input, options.tensorName());
                opened.add(in);
                if (in.cols() != opened.get(0).cols()) {
                    throw new IllegalArgumentException(input + " has rows of width " + in.cols() + " but " + inputs.get(0)
                            + " has " + opened.get(0).cols() + "; all inputs of one hook must have the same width");
                }
            }
            return write(conf, opened, out, options);
        } finally {
            for (Input in : opened) {
                in.close();
            }
        }
    }

    private static ActivationManifest write(Configuration conf, List<Input> inputs, Path out, Options options) {
        try {
            FileSystem fs = TableFiles.writableFileSystem(out, conf);
            Path target = fs.makeQualified(out);
            boolean replacing = checkTarget(fs, target, options.overwrite());
            Path parent = target.getParent();
            if (parent == null) {
                throw new IllegalArgumentException("cannot import into the file system root " + target + "; choose a directory below it");
            }
            fs.mkdirs(parent);
            // On an object store the cache is written in place (its old manifest removed first) and the
            // manifest, written last, is what makes it a cache; elsewhere a staging directory is renamed.
            boolean inPlace = CommitProtocol.of(fs, conf) == CommitProtocol.MARKER;
            if (inPlace && replacing) {
                fs.delete(new Path(target, ActivationManifest.FILE_NAME), false);
                fs.delete(target, true);
            }
            Path staging = inPlace ? target : new Path(parent, "." + target.getName() + ".importing-" + UUID.randomUUID());
            try {
                fs.mkdirs(staging);
                int d = inputs.get(0).cols();
                long seqId = 0;
                for (int i = 0; i < inputs.size(); i++) {
                    Input input = inputs.get(i);
                    Path shard = new Path(staging, ActivationShardWriter.shardFileName(i));
                    try (ActivationShardWriter writer = ActivationShardWriter.open(conf, shard, List.of(options.hook()),
                            new int[] {d}, options.dtype())) {
                        seqId = copyRows(input, writer, seqId);
                        writer.commit();
                    }
                }
                ActivationManifest.CommittedShards committed = ActivationManifest.listCommittedShards(conf, staging);
                ActivationManifest manifest = ActivationManifest.of("imported", null, 0, null, null, null, committed);
                manifest.write(fs, staging);
                if (!inPlace) {
                    publish(fs, staging, target, replacing);
                }
                return manifest;
            } finally {
                if (!inPlace && fs.exists(staging)) {
                    fs.delete(staging, true);
                }
            }
        } catch (IOException e) {
            throw TableFiles.io("importing activations into", out, e);
        }
    }

    private static long copyRows(Input input, ActivationShardWriter writer, long firstSeqId) throws IOException {
        int d = input.cols();
        int chunkRows = (int) Math.max(1, Math.min(input.rows(), CHUNK_BYTES / ((long) d * 4)));
        byte[] bytes = new byte[chunkRows * d * input.dtype().bytes];
        float[][] values = {new float[chunkRows * d]};
        long[] seqIds = new long[chunkRows];
        int[] positions = new int[chunkRows];
        int[] tokenIds = new int[chunkRows];
        java.util.Arrays.fill(tokenIds, -1);
        long seqId = firstSeqId;
        for (long done = 0; done < input.rows(); ) {
            int n = (int) Math.min(chunkRows, input.rows() - done);
            input.readRows(bytes, n);
            PackedVectors.decode(bytes, 0, n * d, input.dtype(), values[0], 0);
            for (int r = 0; r < n; r++) {
                seqIds[r] = seqId++;
            }
            writer.writeRows(seqIds, positions, tokenIds, values, n);
            done += n;
        }
        return seqId;
    }

    /** Returns whether {@code target} exists and will be replaced; refuses when that would lose something. */
    private static boolean checkTarget(FileSystem fs, Path target, boolean overwrite) throws IOException {
        FileStatus status;
        try {
            status = fs.getFileStatus(target);
        } catch (FileNotFoundException e) {
            return false;
        }
        if (!status.isDirectory()) {
            throw new IllegalArgumentException(target + " is a file; choose a directory for the activation cache");
        }
        FileStatus[] entries = fs.listStatus(target);
        if (entries.length == 0) {
            return true;
        }
        boolean complete = fs.exists(new Path(target, ActivationManifest.FILE_NAME));
        for (FileStatus entry : entries) {
            String name = entry.getPath().getName();
            if (!entry.isFile() || !(TableFiles.isHidden(name) || name.endsWith(".parquet"))) {
                throw new IllegalArgumentException(target + " holds files that are not an activation cache (" + name
                        + "); choose a new output directory");
            }
        }
        if (!overwrite) {
            throw new IllegalArgumentException(target + " already holds " + (complete ? "a complete" : "an incomplete")
                    + " activation cache; pass --overwrite to replace it or choose another output directory");
        }
        return true;
    }

    /** Moves the finished staging directory to {@code target}, replacing the old cache only now. */
    private static void publish(FileSystem fs, Path staging, Path target, boolean replacing) throws IOException {
        Path old = null;
        if (replacing) {
            old = new Path(target.getParent(), "." + target.getName() + ".replaced-" + UUID.randomUUID());
            if (!fs.rename(target, old)) {
                throw new IOException("cannot move the old cache " + target + " aside");
            }
        }
        if (!fs.rename(staging, target)) {
            if (old != null) {
                fs.rename(old, target);
            }
            throw new IOException("cannot move the new cache " + staging + " to " + target);
        }
        if (old != null) {
            fs.delete(old, true);
        }
    }

    /** One input file: a header already checked, rows streamed as packed little-endian bytes. */
    private interface Input extends Closeable {
        long rows();

        int cols();

        DType dtype();

        /** Reads the next {@code n} rows' bytes into {@code dst}. */
        void readRows(byte[] dst, int n) throws IOException;

        @Override
        void close();

        static Input open(Configuration conf, Path path, String tensorName) {
            String name = path.getName().toLowerCase(Locale.ROOT);
            try {
                if (name.endsWith(".npy")) {
                    return NpyInput.open(conf, path);
                }
                if (name.endsWith(".safetensors")) {
                    return SafeTensorsInput.open(conf, path, tensorName);
                }
            } catch (FileNotFoundException e) {
                throw new IllegalArgumentException(path + ": no such file; check the --input path");
            } catch (IOException e) {
                throw TableFiles.io("reading", path, e);
            }
            throw new IllegalArgumentException(path + ": unknown input format; give .npy or .safetensors files");
        }
    }

    /**
     * NumPy {@code .npy}: magic {@code \x93NUMPY}, version, header length (2 bytes LE in v1, 4 in
     * v2/v3), a Python dict literal header, then the raw array. Parsed here because the format is a
     * few lines and no maintained Java reader exists.
     */
    static final class NpyInput implements Input {
        private static final Pattern DESCR = Pattern.compile("'descr'\\s*:\\s*'([^']*)'");
        private static final Pattern FORTRAN = Pattern.compile("'fortran_order'\\s*:\\s*(True|False)");
        private static final Pattern SHAPE = Pattern.compile("'shape'\\s*:\\s*\\(([^)]*)\\)");

        private final FSDataInputStream in;
        private final long rows;
        private final int cols;
        private final DType dtype;

        private NpyInput(FSDataInputStream in, long rows, int cols, DType dtype) {
            this.in = in;
            this.rows = rows;
            this.cols = cols;
            this.dtype = dtype;
        }

        static NpyInput open(Configuration conf, Path path) throws IOException {
            FileSystem fs = path.getFileSystem(conf);
            long length = fs.getFileStatus(path).getLen();
            FSDataInputStream in = fs.open(path);
            try {
                byte[] magic = new byte[8];
                in.readFully(magic);
                if ((magic[0] & 0xff) != 0x93 || !new String(magic, 1, 5, StandardCharsets.ISO_8859_1).equals("NUMPY")) {
                    throw new IllegalArgumentException(path + " is not a .npy file (bad magic); save it with numpy.save");
                }
                int major = magic[6];
                long headerLength;
                int prefix;
                if (major == 1) {
                    headerLength = (in.readUnsignedByte()) | (in.readUnsignedByte() << 8);
                    prefix = 10;
                } else if (major == 2 || major == 3) {
                    byte[] b = new byte[4];
                    in.readFully(b);
                    headerLength = ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).getInt() & 0xffffffffL;
                    prefix = 12;
                } else {
                    throw new IllegalArgumentException(path + " is .npy format version " + major + ", which is not supported (1-3 are)");
                }
                if (headerLength > 1 << 20) {
                    throw new IllegalArgumentException(path + ": .npy header of " + headerLength + " bytes; the file is corrupt");
                }
                byte[] headerBytes = new byte[(int) headerLength];
                in.readFully(headerBytes);
                String header = new String(headerBytes, major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
                DType dtype = npyDtype(path, field(path, DESCR, header, "descr"));
                if (field(path, FORTRAN, header, "fortran_order").equals("True")) {
                    throw new IllegalArgumentException(path + " is stored in Fortran order; save a C-order array (numpy.ascontiguousarray)");
                }
                String[] shape = field(path, SHAPE, header, "shape").split(",");
                List<Long> dims = new ArrayList<>();
                for (String s : shape) {
                    if (!s.isBlank()) {
                        dims.add(Long.parseLong(s.trim()));
                    }
                }
                if (dims.size() != 2 || dims.get(1) < 1 || dims.get(1) > Integer.MAX_VALUE / 4) {
                    throw new IllegalArgumentException(path + " has shape " + dims + "; expected a 2-D array [rows, d]");
                }
                long rows = dims.get(0);
                int cols = (int) (long) dims.get(1);
                long expected = prefix + headerLength + rows * cols * dtype.bytes;
                if (length < expected) {
                    throw new IllegalArgumentException(path + " is truncated: " + length + " bytes, but shape " + dims
                            + " needs " + expected);
                }
                return new NpyInput(in, rows, cols, dtype);
            } catch (IOException | RuntimeException e) {
                in.close();
                if (e instanceof EOFException) {
                    throw new IllegalArgumentException(path + " is truncated inside its .npy header");
                }
                if (e instanceof NumberFormatException) {
                    throw new IllegalArgumentException(path + ": unreadable shape in the .npy header");
                }
                throw e;
            }
        }

        private static String field(Path path, Pattern pattern, String header, String key) {
            Matcher m = pattern.matcher(header);
            if (!m.find()) {
                throw new IllegalArgumentException(path + ": the .npy header has no '" + key + "' (" + header.trim() + ")");
            }
            return m.group(1);
        }

        private static DType npyDtype(Path path, String descr) {
            switch (descr) {
                case "<f4":
                    return DType.F32;
                case "<f2":
                    return DType.F16;
                default:
                    throw new IllegalArgumentException(path + " holds dtype '" + descr + "'; only little-endian float32 ('<f4') and"
                            + " float16 ('<f2') are supported: convert with arr.astype('<f4')");
            }
        }

        @Override
        public long rows() {
            return rows;
        }

        @Override
        public int cols() {
            return cols;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public void readRows(byte[] dst, int n) throws IOException {
            in.readFully(dst, 0, n * cols * dtype.bytes);
        }

        @Override
        public void close() {
            try {
                in.close();
            } catch (IOException ignored) {
                // read-only
            }
        }
    }

    /** A [rows, d] float tensor of a safetensors file (copied to local disk first if remote, for mmap). */
    static final class SafeTensorsInput implements Input {
        private final SafeTensors file;
        private final ByteBuffer data;
        private final java.nio.file.Path localCopy;
        private final long rows;
        private final int cols;
        private final DType dtype;

        private SafeTensorsInput(SafeTensors file, ByteBuffer data, java.nio.file.Path localCopy, long rows, int cols, DType dtype) {
            this.file = file;
            this.data = data;
            this.localCopy = localCopy;
            this.rows = rows;
            this.cols = cols;
            this.dtype = dtype;
        }

        static SafeTensorsInput open(Configuration conf, Path path, String tensorName) throws IOException {
            FileSystem fs = path.getFileSystem(conf);
            java.nio.file.Path local;
            java.nio.file.Path copy = null;
            if (fs instanceof LocalFileSystem lfs) {
                local = lfs.pathToFile(path).toPath();
            } else if (fs instanceof RawLocalFileSystem raw) {
                local = raw.pathToFile(path).toPath();
            } else {
                copy = Files.createTempFile("spindle-import-", ".safetensors");
                fs.copyToLocalFile(false, path, new Path(copy.toUri()), true);
                local = copy;
            }
            if (!Files.exists(local)) {
                throw new FileNotFoundException(path.toString());
            }
            SafeTensors st = SafeTensors.open(local);
            try {
                String name = tensorName;
                if (name == null) {
                    if (st.tensors().size() != 1) {
                        throw new IllegalArgumentException(path + " holds " + st.tensors().size() + " tensors " + st.tensors().keySet()
                                + "; name the one to import (--tensor)");
                    }
                    name = st.tensors().keySet().iterator().next();
                } else if (!st.contains(name)) {
                    throw new IllegalArgumentException(path + " has no tensor '" + name + "'; it holds " + st.tensors().keySet());
                }
                SafeTensors.TensorInfo info = st.info(name);
                if (!info.dtype().isFloat()) {
                    throw new IllegalArgumentException(path + ": tensor '" + name + "' is " + info.dtype() + "; activations must be F32, F16 or BF16");
                }
                if (info.shape().length != 2 || info.shape()[1] < 1) {
                    throw new IllegalArgumentException(path + ": tensor '" + name + "' has shape " + info.shapeString()
                            + "; expected a 2-D tensor [rows, d]");
                }
                return new SafeTensorsInput(st, st.raw(name), copy, info.shape()[0], (int) info.shape()[1], info.dtype());
            } catch (RuntimeException e) {
                st.close();
                if (copy != null) {
                    Files.deleteIfExists(copy);
                }
                throw e;
            }
        }

        @Override
        public long rows() {
            return rows;
        }

        @Override
        public int cols() {
            return cols;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public void readRows(byte[] dst, int n) {
            data.get(dst, 0, n * cols * dtype.bytes);
        }

        @Override
        public void close() {
            file.close();
            if (localCopy != null) {
                try {
                    Files.deleteIfExists(localCopy);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }
    }
}
