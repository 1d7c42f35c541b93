package jobs.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The PyTorch peer of a bench figure: runs {@code torch_peer.py} (beside this class) in
 * {@code python3} with the same shapes, thread count and FLOP accounting, and reports Spindle's
 * tokens/s over PyTorch's. Absent python3 or torch is reported, never a failure: the peer is
 * optional for users and never needed by the tests.
 */
final class TorchPeer {

    private final String python;
    private final Path script;
    private final int threads;

    private TorchPeer(String python, Path script, int threads) {
        this.python = python;
        this.script = script;
        this.threads = threads;
    }

    /** The peer on the first of {@code pythons} that has torch, or null after printing why there is none. */
    static TorchPeer find(List<String> pythons, Path script, int threads) {
        if (!Files.isRegularFile(script)) {
            System.out.println("peer torch: " + script + " not found (run from the repository root or pass --peer-script)");
            return null;
        }
        for (String python : pythons) {
            if (hasTorch(python)) {
                return new TorchPeer(python, script, threads);
            }
        }
        System.out.println("peer torch: no torch in " + String.join(" or ", pythons)
                + " (Debian: apt-get install python3-torch); peer figures skipped");
        return null;
    }

    private static boolean hasTorch(String python) {
        try {
            Process p = new ProcessBuilder(python, "-c", "import torch").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * Runs one workload ("forward", "sae", "clt") with the given options and returns the figure
     * {@code NAME_vs_torch}: Spindle's tokens/s over PyTorch's (higher is better), or null (with a
     * printed reason) if the peer failed.
     */
    Figure compare(String figureName, String workload, double spindleTokensPerSecond, Double target, String... options) {
        List<String> command = new ArrayList<>(List.of(python, script.toString(), workload, "--threads", String.valueOf(threads)));
        command.addAll(List.of(options));
        JsonNode peer;
        try {
            Process p = new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT)
                    .redirectOutput(ProcessBuilder.Redirect.PIPE).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (p.waitFor() != 0 || out.isEmpty()) {
                System.out.println("peer torch: " + workload + " failed (exit " + p.exitValue() + "); figure skipped");
                return null;
            }
            peer = new ObjectMapper().readTree(out.substring(out.lastIndexOf('\n') + 1));
        } catch (IOException e) {
            System.out.println("peer torch: " + workload + " failed: " + e.getMessage());
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
        double torchTokens = peer.get("tokens_per_second").asDouble();
        Map<String, Object> details = new LinkedHashMap<>();
        details.put("spindle_tokens_per_second", spindleTokensPerSecond);
        details.put("torch_tokens_per_second", torchTokens);
        details.put("torch_gflops", peer.get("gflops").asDouble());
        details.put("torch", peer.path("torch").asText());
        details.put("torch_threads", peer.path("threads").asInt());
        details.put("torch_blas", peer.path("blas").toString());
        details.put("command", String.join(" ", command));
        double ratio = spindleTokensPerSecond / torchTokens;
        return target == null ? Figure.measured(figureName, ratio, "ratio", details) : Figure.atLeast(figureName, ratio, target, details);
    }
}
