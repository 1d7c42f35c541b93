package training.clt;

import activations.hooks.ForwardRequest;
import activations.hooks.ForwardResult;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import activations.table.InMemoryActivationSource;
import activations.tokenizer.TextTokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.export.CircuitTracerDictionary;
import training.export.CircuitTracerExporter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The replacement-model evaluation on the bundled 2-layer model: a replacement that hands back the
 * model's own MLP output gives agreement 1 and KL 0; zeroing every MLP output is visibly worse; a
 * CLT trained for a few hundred steps on the model's own activations (collected with
 * {@link TransformerModel#forward}), exported to circuit-tracer's layout and loaded back, gives
 * agreement in [0, 1] and KL >= 0 and beats zero-ablation.
 */
class ReplacementEvaluationTest {

    private static final int SEQ = 32;
    static TransformerModel model;
    static int[][] train;
    static int[][] held;

    @BeforeAll
    static void load() throws Exception {
        SmallShapes.singleThreaded();
        Path repo = Path.of(System.getProperty("spindle.repo", "."));
        model = TransformerModel.load(repo.resolve("models/tinystories-656k"));
        TextTokenizer tokenizer = TextTokenizer.load(repo.resolve("models/tinystories-656k"));
        String text = Files.readString(repo.resolve("corpora/tinystories-1000/tinystories_train_first1000.ascii.txt"));
        int[] ids = tokenizer.encode(text, false);
        List<int[]> sequences = new ArrayList<>();
        for (int start = 0; start + SEQ <= ids.length && sequences.size() < 296; start += SEQ) {
            sequences.add(Arrays.copyOfRange(ids, start, start + SEQ));
        }
        train = sequences.subList(0, 280).toArray(new int[0][]);
        held = sequences.subList(280, 296).toArray(new int[0][]);
    }

    @AfterAll
    static void restoreThreads() {
        SmallShapes.restore();
    }

    private static ReplacementEvaluation.Replacement.Factory identity() {
        return () -> new ReplacementEvaluation.Replacement() {
            @Override
            public void observeInput(int layer, INDArray input) {
            }

            @Override
            public INDArray replaceOutput(int layer, INDArray modelOutput) {
                return modelOutput;
            }
        };
    }

    private static ReplacementEvaluation.Replacement.Factory zero() {
        return () -> new ReplacementEvaluation.Replacement() {
            @Override
            public void observeInput(int layer, INDArray input) {
            }

            @Override
            public INDArray replaceOutput(int layer, INDArray modelOutput) {
                return Nd4j.zerosLike(modelOutput);
            }
        };
    }

    @Test
    void replacingMlpOutputsByThemselvesChangesNothing() {
        ReplacementEvaluation.Report r = ReplacementEvaluation.evaluate(model, identity(), "ln2.hook_normalized", held);
        assertEquals(1.0, r.allLayersAgreement());
        assertEquals(0.0, r.allLayersKl(), 1e-9);
        for (int l = 0; l < model.config().nLayers(); l++) {
            assertEquals(1.0, r.singleLayerAgreement()[l]);
            assertEquals(0.0, r.singleLayerKl()[l], 1e-9);
        }
        assertEquals(held.length * SEQ, r.positions());
    }

    @Test
    void aTrainedCrossLayerTranscoderReplacesTheMlps(@TempDir Path dir) {
        int layers = model.config().nLayers();
        int d = model.config().dModel();
        List<HookPoint> hooks = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            hooks.add(new HookPoint(HookPoint.Kind.LN2_NORMALIZED, l));
            hooks.add(new HookPoint(HookPoint.Kind.MLP_OUT, l));
        }
        hooks.forEach(h -> names.add(h.name()));
        ForwardResult activations = model.forward(train, ForwardRequest.capture(hooks));
        float[][] data = new float[hooks.size()][];
        int[] dims = new int[hooks.size()];
        for (int h = 0; h < hooks.size(); h++) {
            data[h] = activations.get(hooks.get(h));
            dims[h] = d;
        }
        int batch = 256;
        int steps = 300;
        CltConfig config = CltConfig.builder(layers, d, 512).batchSize(batch).totalTokens((long) steps * batch)
                .learningRate(2e-3).lrWarmupSteps(20).sparsityCoefficient(0.1).sparsityWarmupSteps(50).thresholdInit(0.05)
                .bandwidth(0.1).metricsEverySteps(100).checkpointEverySteps(0).deadWindowTokens(50L * batch).normalizationBatches(4).build();
        CltTrainer.Result result = new CltTrainer(config, dir.resolve("run")).listener(CltTrainer.consoleProgress(System.out))
                .train(new InMemoryActivationSource(names, data, dims, 20));
        Path export = dir.resolve("export");
        CircuitTracerExporter.exportCrossLayer(result.clt(), result.inputScales(), result.targetScales(),
                "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", export);
        CircuitTracerDictionary clt = CircuitTracerDictionary.load(export);

        ReplacementEvaluation.Report report = ReplacementEvaluation.evaluate(model, clt, held);
        ReplacementEvaluation.Report ablated = ReplacementEvaluation.evaluate(model, zero(), "ln2.hook_normalized", held);
        System.out.printf(Locale.ROOT, "CLT replacement: all-layers agreement %.3f KL %.4f; single-layer agreement %s KL %s;"
                        + " NMSE %s; L0 %s. Zero-ablation: agreement %.3f KL %.4f%n",
                report.allLayersAgreement(), report.allLayersKl(), Arrays.toString(report.singleLayerAgreement()),
                Arrays.toString(report.singleLayerKl()), Arrays.toString(report.nmseByLayer()), Arrays.toString(report.l0ByLayer()),
                ablated.allLayersAgreement(), ablated.allLayersKl());
        assertTrue(report.allLayersAgreement() >= 0 && report.allLayersAgreement() <= 1);
        assertTrue(report.allLayersKl() >= 0);
        for (int l = 0; l < layers; l++) {
            assertTrue(report.singleLayerKl()[l] >= 0 && report.singleLayerAgreement()[l] <= 1);
            assertTrue(report.nmseByLayer()[l] < 1, "layer " + l + " NMSE " + report.nmseByLayer()[l] + " is no better than the mean");
            assertTrue(report.l0ByLayer()[l] > 0, "no features fire at layer " + l);
            assertTrue(report.deadByLayer()[l] >= 0 && report.deadByLayer()[l] < clt.featuresPerLayer(),
                    "dead features at layer " + l + ": " + report.deadByLayer()[l]);
        }
        assertTrue(report.allLayersKl() < ablated.allLayersKl(), "the CLT should beat zero-ablating every MLP: KL "
                + report.allLayersKl() + " vs " + ablated.allLayersKl());
        assertTrue(report.allLayersAgreement() > ablated.allLayersAgreement());
    }
}
