package jobs.bench;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import jobs.pipeline.PipelineJob;
import jobs.spark.SparkSessions;
import org.apache.spark.sql.SparkSession;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Orchestration overhead of the demo pipeline: wall time (Spark session start included) over the
 * sum of its stages' own time. {@code --quick} runs the demo configuration with smaller training
 * budgets.
 */
final class PipelineBenchmark {

    private PipelineBenchmark() {
    }

    @SuppressWarnings("unchecked")
    static Figure run(Config demo, Path out, boolean quick) {
        Config config = ConfigFactory.parseMap(Map.of("out", out.toString())).withFallback(demo);
        if (quick) {
            config = ConfigFactory.parseString("""
                    saes = [{ name = sae, hook = "blocks.1.hook_resid_post", architecture = jumprelu, d-sae = 512,
                              batch-tokens = 1024, tokens = 200000, lr = 1e-3, sparsity-coeff = 0.3,
                              threshold-init = 0.5, bandwidth = 0.5, checkpoint-every = 0 }]
                    clts = [{ name = clt, layers = 2, features-per-layer = 128, batch-tokens = 1024, tokens = 100000,
                              checkpoint-every = 0 }]
                    """).withFallback(config);
        }
        PipelineJob.Plan plan = PipelineJob.plan(config, quick ? "the quick demo configuration" : "conf/demo.conf");
        long start = System.nanoTime();
        SparkSession spark = SparkSessions.create("spindle bench pipeline", plan.settings().getString("master"));
        Map<String, Object> summary;
        try {
            summary = PipelineJob.run(spark, plan, new PrintStream(OutputStream.nullOutputStream()));
        } finally {
            spark.stop();
        }
        double wall = (System.nanoTime() - start) / 1e9;
        double stages = ((Map<String, Double>) summary.get("stage_seconds")).values().stream().mapToDouble(Double::doubleValue).sum();
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("configuration", quick ? "conf/demo.conf with smaller training budgets" : "conf/demo.conf");
        details.put("wall_seconds", wall);
        details.put("stage_seconds", summary.get("stage_seconds"));
        return Figure.atMost("pipeline_overhead", wall / stages, 1.3, details);
    }
}
