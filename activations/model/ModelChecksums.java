package activations.model;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/** SHA-256 identities of model files, recorded in manifests so caches never mix models silently. */
public final class ModelChecksums {

    private ModelChecksums() {
    }

    /** SHA-256 over config.json and every *.safetensors file of a model directory, in name order. */
    public static String model(Path modelDir) {
        try (var list = Files.list(modelDir)) {
            List<Path> files = list.filter(p -> {
                String n = p.getFileName().toString();
                return n.equals("config.json") || n.endsWith(".safetensors");
            }).sorted().toList();
            return sha256(files);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read model " + modelDir + ": " + e.getMessage(), e);
        }
    }

    public static String file(Path file) {
        return sha256(List.of(file));
    }

    private static String sha256(List<Path> files) {
        try {
            MessageDigest digest = MessageDigest.getInstance("SHA-256");
            byte[] buffer = new byte[1 << 20];
            for (Path f : files) {
                try (InputStream in = Files.newInputStream(f)) {
                    int n;
                    while ((n = in.read(buffer)) > 0) {
                        digest.update(buffer, 0, n);
                    }
                }
            }
            return HexFormat.of().formatHex(digest.digest());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + files + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
