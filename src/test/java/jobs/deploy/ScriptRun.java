package jobs.deploy;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/** Runs a script of the repository as a separate process and keeps its exit code, stdout and stderr. */
record ScriptRun(int exitCode, String out, String err) {

    /** Generous: a hung script fails the test instead of hanging the build. */
    static final long TIMEOUT_SECONDS = 300;

    /** The repository root (surefire's working directory). */
    static Path repo() {
        return Path.of(System.getProperty("spindle.repo", ".")).toAbsolutePath().normalize();
    }

    static ScriptRun run(Map<String, String> environment, String... command) {
        return start(environment, command).finish();
    }

    static Running start(Map<String, String> environment, String... command) {
        try {
            Path out = Files.createTempFile("script-out", ".txt");
            Path err = Files.createTempFile("script-err", ".txt");
            ProcessBuilder builder = new ProcessBuilder(command).directory(repo().toFile())
                    .redirectOutput(out.toFile()).redirectError(err.toFile());
            environment.forEach((k, v) -> {
                if (v == null) {
                    builder.environment().remove(k);
                } else {
                    builder.environment().put(k, v);
                }
            });
            return new Running(builder.start(), out, err, String.join(" ", command));
        } catch (IOException e) {
            throw new IllegalStateException("cannot start " + Arrays.toString(command), e);
        }
    }

    /** stdout, one element per line. */
    List<String> outLines() {
        return out.lines().collect(Collectors.toList());
    }

    /** PATH without any directory holding a spark-submit, so the scripts see no Spark installation. */
    static String pathWithoutSpark() {
        List<String> kept = new ArrayList<>();
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin:/bin").split(File.pathSeparator)) {
            if (!dir.isEmpty() && !Files.exists(Path.of(dir, "spark-submit"))) {
                kept.add(dir);
            }
        }
        return String.join(File.pathSeparator, kept);
    }

    /** Whether an executable is on this JVM's PATH. */
    static boolean onPath(String executable) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, executable))) {
                return true;
            }
        }
        return false;
    }

    /** Writes an executable bash script. */
    static Path writeScript(Path file, String body) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, "#!/usr/bin/env bash\n" + body, StandardCharsets.UTF_8);
        if (!file.toFile().setExecutable(true)) {
            throw new IOException("cannot make " + file + " executable");
        }
        return file;
    }

    /** A process started by {@link #start}. */
    record Running(Process process, Path out, Path err, String description) {

        ScriptRun finish() {
            try {
                if (!process.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                    process.destroyForcibly();
                    throw new AssertionError(description + " did not finish in " + TIMEOUT_SECONDS + " s");
                }
                ScriptRun run = new ScriptRun(process.exitValue(), Files.readString(out), Files.readString(err));
                Files.deleteIfExists(out);
                Files.deleteIfExists(err);
                return run;
            } catch (IOException e) {
                throw new IllegalStateException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }
}
