package jobs.analysis;

import activations.safetensors.SafeTensors;
import analysis.probe.LinearProbes;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jobs.spark.SparkTestSession;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ProbeJobTest {

    static final String MODEL = "models/tinystories-656k";
    static final List<String> HOOKS = List.of("blocks.0.hook_resid_post", "blocks.1.hook_resid_post");
    static SparkSession spark;
    static Path work;

    @BeforeAll
    static void start(@TempDir Path dir) {
        spark = SparkTestSession.start();
        work = dir;
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static ProbeJob.Options options(Path data, String label, List<String> hooks, String out) {
        return new ProbeJob.Options(MODEL, data.toString(), "text", label, hooks, "last", false, 1e-3, 500,
                work.resolve(out).toString(), false);
    }

    /** The label is the animal the text ends with: at the last position it is plainly linear in the residual stream. */
    static Path animals(String name) throws Exception {
        String[] names = {"Lily", "Tom", "Sue", "Ben", "Max", "Mia", "Sam", "Anna", "Tim", "Zoe"};
        String[] places = {"park", "garden", "house", "forest", "town"};
        List<String> lines = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < 60; i++) {
            boolean dog = (i * 7 + i / 3) % 2 == 0;
            String text = names[i % names.length] + " went to the " + places[i % places.length] + " and saw a big "
                    + (dog ? "dog" : "cat");
            lines.add(json.writeValueAsString(java.util.Map.of("text", text, "animal", dog ? "dog" : "cat", "n", i)));
        }
        Path file = work.resolve(name);
        Files.write(file, lines);
        return file;
    }

    @Test
    void probesRecoverAnObviouslyLinearLabelOnTheBundledModel() throws Exception {
        LinearProbes.Result r = ProbeJob.run(spark, options(animals("animals.jsonl"), "animal", HOOKS, "probe"));
        assertEquals(List.of("cat", "dog"), r.classes());
        assertEquals(48, r.trainExamples());
        assertEquals(12, r.heldoutExamples(), "lines 0, 5, ..., 55");
        for (LinearProbes.HookProbe p : r.probes()) {
            assertEquals(1.0, p.trainAccuracy(), p.hook());
            assertEquals(1.0, p.heldoutAccuracy(), p.hook());
            assertEquals(1.0, p.meansHeldoutAccuracy(), p.hook());
        }
        JsonNode json = new ObjectMapper().readTree(work.resolve("probe/probe.json").toFile());
        JsonNode hook = json.at("/hooks/blocks.1.hook_resid_post");
        assertEquals(1.0, hook.get("heldout_accuracy").asDouble());
        assertEquals(1.0, hook.at("/difference_of_means/heldout_accuracy").asDouble());
        assertTrue(hook.get("train_accuracy").isNumber());
        try (SafeTensors st = SafeTensors.open(work.resolve("probe/probes.safetensors"))) {
            assertArrayEquals(new long[]{2, 128}, st.info("blocks.0.hook_resid_post.weights").shape());
            assertArrayEquals(new long[]{2}, st.info("blocks.1.hook_resid_post.biases").shape());
            assertArrayEquals(r.probes().get(1).regression().biases(), st.floats("blocks.1.hook_resid_post.biases"));
        }
        assertTrue(Files.size(work.resolve("probe/probe.png")) > 1000);
    }

    @Test
    void badInputIsRefusedInOneLine() throws Exception {
        Path data = animals("bad-base.jsonl");
        assertTrue(assertThrows(IllegalArgumentException.class, () -> ProbeJob.run(spark, options(data, "animal",
                List.of("blocks.3.hook_resid_post"), "bad"))).getMessage().contains("layer 3 does not exist"));
        Path unlabelled = work.resolve("unlabelled.jsonl");
        Files.write(unlabelled, List.of("{\"text\": \"a cat\", \"y\": 1}", "{\"text\": \"a dog\", \"y\": 0}", "{\"text\": \"a cow\"}"));
        assertEquals(unlabelled + " line 3 has no label field 'y' (a string, number or boolean); set --label-field",
                rootMessage(() -> ProbeJob.run(spark, options(unlabelled, "y", HOOKS, "bad"))));
        Path one = work.resolve("one-class.jsonl");
        Files.write(one, List.of("{\"text\": \"a cat\", \"y\": 1}", "{\"text\": \"a dog\", \"y\": 1}", "{\"text\": \"a cow\", \"y\": 1}"));
        assertEquals("every example has the label '1'; a probe needs at least two classes",
                rootMessage(() -> ProbeJob.run(spark, options(one, "y", HOOKS, "bad"))));
        Path empty = work.resolve("empty.jsonl");
        Files.write(empty, List.of("", "  "));
        assertTrue(rootMessage(() -> ProbeJob.run(spark, options(empty, "y", HOOKS, "bad"))).contains("has no examples"));
        assertEquals("--data " + work.resolve("nothing.jsonl") + ": no such file",
                rootMessage(() -> ProbeJob.run(spark, options(work.resolve("nothing.jsonl"), "y", HOOKS, "bad"))));
        assertFalse(Files.exists(work.resolve("bad")), "nothing written");
    }

    /** The user-facing message: the IllegalArgumentException in the cause chain (Spark wraps task errors). */
    static String rootMessage(org.junit.jupiter.api.function.Executable run) {
        Throwable t = assertThrows(Exception.class, run);
        while (t != null && !(t instanceof IllegalArgumentException)) {
            t = t.getCause();
        }
        assertTrue(t != null, "an IllegalArgumentException in the cause chain");
        return t.getMessage();
    }
}
