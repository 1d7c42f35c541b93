package jobs.deploy;

import activations.safetensors.SafeTensors;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * deploy/spindle-submit --master local[2] with no Spark installation: Spark's submit class runs
 * {@code spindle forward} from a jar of target/classes on this JVM's classpath, and the bundled
 * model gives its golden next token.
 */
class SpindleSubmitEndToEndTest {

    static final Path REPO = ScriptRun.repo();
    static final Path MODEL = REPO.resolve("models/tinystories-656k");

    @Test
    void forwardThroughSparkSubmitOnALocalMaster(@TempDir Path dir) throws IOException {
        JsonNode golden = new ObjectMapper().readTree(MODEL.resolve("golden_reference.json").toFile());
        JsonNode top = golden.get("last_position_top5_logits").get(0);
        Path jar = jarOfClasses(REPO.resolve("target/classes"), dir.resolve("spindle.jar"));
        Path out = dir.resolve("forward.safetensors");

        Map<String, String> env = new HashMap<>();
        env.put("SPARK_HOME", null);
        env.put("PATH", ScriptRun.pathWithoutSpark());
        env.put("SPINDLE_JAR", jar.toString());
        env.put("SPINDLE_CLASSPATH", System.getProperty("java.class.path"));
        ScriptRun run = ScriptRun.run(env, REPO.resolve("deploy/spindle-submit").toString(), "--master", "local[2]",
                "forward", "--model", "models/tinystories-656k", "--text", golden.get("prompt").asText(), "--out", out.toString());

        assertEquals(0, run.exitCode(), run.out() + run.err());
        Matcher first = Pattern.compile("1\\. id (\\d+) .* logit (-?[0-9.]+)").matcher(run.out());
        assertTrue(first.find(), run.out());
        assertEquals(top.get("id").asInt(), Integer.parseInt(first.group(1)), run.out());
        assertEquals(top.get("logit").asDouble(), Double.parseDouble(first.group(2)), 1e-3, run.out());
        try (SafeTensors st = SafeTensors.open(out)) {
            int[] promptIds = new int[golden.get("prompt_ids").size()];
            for (int i = 0; i < promptIds.length; i++) {
                promptIds[i] = golden.get("prompt_ids").get(i).asInt();
            }
            assertArrayEquals(promptIds, st.ints("tokens"));
        }
        assertTrue(!run.err().toLowerCase(Locale.ROOT).contains("exception"), "a clean run: " + run.err());
    }

    /** A jar of a class directory, as mvn package would make it (no Maven inside the test). */
    static Path jarOfClasses(Path classes, Path jar) throws IOException {
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "jobs.cli.Spindle");
        List<Path> files;
        try (Stream<Path> walk = Files.walk(classes)) {
            files = walk.filter(Files::isRegularFile).sorted().collect(Collectors.toList());
        }
        try (OutputStream os = Files.newOutputStream(jar); JarOutputStream out = new JarOutputStream(os, manifest)) {
            for (Path file : files) {
                out.putNextEntry(new JarEntry(classes.relativize(file).toString().replace('\\', '/')));
                Files.copy(file, out);
                out.closeEntry();
            }
        }
        return jar;
    }
}
