package jobs.train;

import activations.table.InMemoryActivationSource;
import activations.table.MixingBuffer;
import activations.table.RepeatedSource;
import com.typesafe.config.ConfigFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.junit.jupiter.api.io.TempDir;
import training.sae.SaeConfig;
import training.trainer.SaeTrainer;
import training.trainer.SyntheticDictionary;

import java.nio.file.Path;
import java.util.List;

/**
 * Not a test: the measurement behind the defaults (docs/TRAINING.md), run by hand with
 * {@code mvn test -Dtest=SyntheticSweepExperiment -Dexperiment='key=v,key=v;key=v'} (one run per
 * ';' group, reference defaults otherwise) and {@code -Ddata=dIn,features,active,rows,dSae}.
 */
@EnabledIfSystemProperty(named = "experiment", matches = ".*")
class SyntheticSweepExperiment {

    @Test
    void run(@TempDir Path dir) {
        String[] d = System.getProperty("data", "64,256,5,200000,512").split(",");
        int dIn = Integer.parseInt(d[0]);
        int features = Integer.parseInt(d[1]);
        double active = Double.parseDouble(d[2]);
        int rows = Integer.parseInt(d[3]);
        int dSae = Integer.parseInt(d[4]);
        SyntheticDictionary truth = new SyntheticDictionary(dIn, features, 11);
        float[] data = truth.samples(rows, active, 0.01, 12);
        int i = 0;
        for (String spec : System.getProperty("experiment").split(";")) {
            String hocon = "d-sae = " + dSae + "\n" + spec.replace(",", "\n");
            SaeSettings settings = SaeSettings.of(ConfigFactory.parseString(hocon), "experiment");
            SaeConfig asked = settings.toConfig(dIn);
            TrainingBudget budget = TrainingBudget.plan(rows, asked.totalTokens(),
                    (long) asked.normalizationBatches() * asked.batchSize(), settings.epochs(), asked.batchSize());
            SaeConfig config = budget.capped() ? asked.toBuilder().totalTokens(budget.tokens()).build() : asked;
            long start = System.nanoTime();
            SaeTrainer.Metrics[] last = new SaeTrainer.Metrics[1];
            SaeTrainer.Result result;
            try (var source = new MixingBuffer(new RepeatedSource(() -> new InMemoryActivationSource(List.of("h"),
                    new float[][] {data}, new int[] {dIn}, 1), budget.passes()), settings.mixingBuffer(), settings.seed())) {
                result = new SaeTrainer(config, dir.resolve("run" + i++)).listener(m -> last[0] = m).train(source);
            }
            float[] decoder = result.sae().wDec().dup('c').reshape(result.sae().wDec().length()).toFloatVector();
            System.out.printf(java.util.Locale.ROOT, "RESULT %s | %s | recovered %.3f | l0 %.2f | fvu %.4f | dead %.3f | %.0fs%n",
                    spec, budget.describe(), truth.recovered(decoder, dSae, 0.9), last[0].l0(), last[0].fvu(),
                    last[0].deadFraction(), (System.nanoTime() - start) / 1e9);
        }
    }
}
