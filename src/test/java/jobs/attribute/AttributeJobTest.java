package jobs.attribute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import attribution.TinyTranscoders;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import jobs.spark.SparkTestSession;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import testing.HeadlessChromium;

/**
 * {@code spindle attribute} as a Spark job on the bundled model with a random CLT: three prompts
 * in two tasks give three graph files in circuit-tracer's format, pages that render and link to
 * the dashboard, one graphs.parquet that Spark SQL queries across prompts, and a summary.
 */
class AttributeJobTest {

    static final Path MODEL = Path.of("models/tinystories-656k");
    static SparkSession spark;

    @BeforeAll
    static void start() {
        spark = SparkTestSession.start();
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    @Test
    void graphsForAPromptSetInOneJob(@TempDir Path dir) throws Exception {
        Path clt = TinyTranscoders.crossLayer(dir.resolve("clt"), 2, 128, 32, "ln2.hook_normalized", 21);
        Path prompts = dir.resolve("prompts.jsonl");
        Files.writeString(prompts, """
                {"id": "dog", "prompt": "The little dog ran to the"}
                {"id": "sun", "prompt": "One day, the sun was"}

                {"prompt": "Lily and Tom went to the park and"}
                """);
        Path features = dir.resolve("features");
        Files.createDirectories(features.resolve("dashboard"));
        Files.writeString(features.resolve("dashboard/index.html"), "<html></html>");
        Path out = dir.resolve("out");
        AttributeJob.Options options = new AttributeJob.Options(MODEL.toString(), clt.toString(), null, prompts.toString(), out.toString(),
                0.8, 0.98, 10, 0.95, 64, 2, features.toString(), false);
        AttributeJob.Result result = AttributeJob.run(spark, options);

        assertEquals(List.of("dog", "sun", "prompt-4"), result.prompts().stream().map(p -> p.get("slug")).toList());
        ObjectMapper json = new ObjectMapper();
        JsonNode summary = json.readTree(out.resolve("summary.json").toFile());
        assertEquals(3, summary.get("prompts").size());
        for (String key : List.of("replacement_score", "completeness_score", "pruned_replacement_score", "pruned_completeness_score")) {
            double mean = summary.get("mean").get(key).asDouble();
            assertTrue(mean > 0 && mean <= 1, key + " " + mean);
        }
        assertEquals(3, json.readTree(out.resolve("graphs/graph-metadata.json").toFile()).get("graphs").size());

        JsonNode dog = json.readTree(out.resolve("graphs/dog.json").toFile());
        assertEquals("dog", dog.get("metadata").get("slug").asText());
        assertEquals("The little dog ran to the", dog.get("metadata").get("prompt").asText());
        int promptTokens = dog.get("metadata").get("prompt_tokens").size();
        long embeddings = 0;
        for (JsonNode n : dog.get("nodes")) {
            embeddings += n.get("feature_type").asText().equals("embedding") ? 1 : 0;
        }
        assertEquals(promptTokens, embeddings, "one embedding node per prompt token");

        Dataset<Row> table = spark.read().parquet(out.resolve("graphs.parquet").toString());
        table.createOrReplaceTempView("graphs");
        long dogNodes = spark.sql("SELECT * FROM graphs WHERE prompt_id = 'dog' AND row_type = 'node'").count();
        long dogLinks = spark.sql("SELECT * FROM graphs WHERE prompt_id = 'dog' AND row_type = 'link'").count();
        assertEquals(dog.get("nodes").size(), dogNodes);
        assertEquals(dog.get("links").size(), dogLinks);
        List<Row> top = spark.sql("SELECT layer, feature, SUM(node_influence) AS total FROM graphs WHERE feature_type = "
                + "'cross layer transcoder' GROUP BY layer, feature ORDER BY total DESC LIMIT 3").collectAsList();
        assertTrue(!top.isEmpty() && top.get(0).getDouble(2) > 0, "features ranked by influence across prompts");

        Path page = out.resolve("pages/dog.html");
        String dom = HeadlessChromium.dumpDom(dir, page.toUri().toString());
        assertTrue(dom.contains("data-rendered=\"true\""));
        assertTrue(dom.contains("href=\"../../features/dashboard/index.html#f="), "feature names link to the dashboard");
        assertTrue(Files.isRegularFile(page.getParent().resolve("../../features/dashboard/index.html").normalize()));

        IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> AttributeJob.run(spark, options));
        assertTrue(again.getMessage().contains("--overwrite"), again.getMessage());
    }
}
