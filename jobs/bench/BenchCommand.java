package jobs.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

/**
 * {@code spindle bench}: every performance figure, each a ratio against a baseline measured in
 * the same run (timings on shared machines drift; ratios within one run do not).
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure throughput figures as ratios against baselines measured in the same run.")
public final class BenchCommand implements Callable<Integer> {

    @Option(names = "--quick", description = "Smaller shapes, about 3 minutes on 2 cores (the figures say so).")
    boolean quick;

    @Option(names = "--out", description = "Write the figures as JSON to this file.")
    Path out;

    @Option(names = "--gpt2-tokenizer", defaultValue = "models/tokenizers/gpt2", description = "GPT-2 encoder.json + vocab.bpe (default: ${DEFAULT-VALUE}).")
    Path gpt2Tokenizer;

    @Option(names = "--corpus", defaultValue = "corpora/tinystories-1000/tinystories_train_first1000.ascii.txt", description = "Text for the caching figures (default: ${DEFAULT-VALUE}).")
    Path corpus;

    @Override
    public Integer call() throws IOException {
        Path work = Files.createTempDirectory("spindle-bench-");
        try {
            List<Figure> figures = new ArrayList<>();
            double gemmSeconds = quick ? 1.0 : 3.0;
            Figure gemm = quick ? GemmBenchmark.run(2048, 768, 4096, gemmSeconds) : GemmBenchmark.run(4096, 768, 16384, gemmSeconds);
            figures.add(gemm);
            report(gemm);
            SaeStepBenchmark.Result sae = quick ? SaeStepBenchmark.run(768, 4096, 2048, 3) : SaeStepBenchmark.run(768, 16384, 4096, 5);
            figures.add(sae.figure());
            report(sae.figure());
            Figure clt = quick ? CltStepBenchmark.run(2, 256, 2048, 2048, 3) : CltStepBenchmark.run(4, 256, 4096, 4096, 6);
            figures.add(clt);
            report(clt);
            Figure reader = ReaderBenchmark.run(work.resolve("reader"), 768, quick ? 40_000 : 100_000, quick ? 2048 : 4096,
                    sae.trainerRowsPerSecond());
            figures.add(reader);
            report(reader);
            int layers = quick ? 4 : 12;
            Path model = RandomGpt2.write(work.resolve("gpt2-random"), layers, 768, 12, 128, gpt2Tokenizer);
            Figure forward = ForwardBenchmark.run(model, quick ? 8 : 32, 128, quick ? 5 : 15, gemm.value());
            figures.add(forward);
            report(forward);
            CacheBenchmark.Figures cache = CacheBenchmark.run(work.resolve("cache"), model, corpus, quick ? 60 : 600, 128, layers);
            figures.add(cache.writeShare());
            report(cache.writeShare());
            figures.add(cache.scaling());
            report(cache.scaling());
            Figure shuffle = CacheBenchmark.globalShuffleCost(work.resolve("shuffle"), model, corpus, quick ? 10_000 : 200_000, 128, layers);
            figures.add(shuffle);
            report(shuffle);
            Figure pipeline = PipelineBenchmark.run(jobs.cli.DemoConfiguration.load(), work.resolve("pipeline"), quick);
            figures.add(pipeline);
            report(pipeline);
            if (out != null) {
                write(figures);
            }
            return quick || figures.stream().allMatch(f -> f.holds() == null || f.holds()) ? 0 : 3;
        } finally {
            deleteRecursively(work);
        }
    }

    private void report(Figure f) {
        // Targets are set for the full shapes; quick shapes only indicate.
        String verdict = f.holds() == null ? "" : f.holds() ? "  holds" : quick ? "  below the full-run target" : "  MISSES";
        String target = f.target() == null ? "" : "  target " + (f.higherIsBetter() ? ">= " : "<= ") + f.target();
        System.out.printf(Locale.ROOT, "%-18s %10.3f %-8s%s%s%s%n", f.name(), f.value(), f.unit(), target, verdict,
                quick ? "  (quick shapes; targets apply to the full run)" : "");
    }

    private void write(List<Figure> figures) throws IOException {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("created_at", Instant.now().toString());
        json.put("quick", quick);
        json.put("machine", Map.of("cores", Runtime.getRuntime().availableProcessors(),
                "os", System.getProperty("os.name") + " " + System.getProperty("os.arch"),
                "java", System.getProperty("java.version")));
        Map<String, Object> values = new LinkedHashMap<>();
        for (Figure f : figures) {
            values.put(f.name(), f.toJson());
        }
        json.put("figures", values);
        Files.write(out, new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(json));
    }

    private static void deleteRecursively(Path dir) {
        try (Stream<Path> paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
