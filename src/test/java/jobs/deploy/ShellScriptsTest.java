package jobs.deploy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The shell scripts (deploy/, ./spindle, .ci/run, the CronJob's command) are executable and shellcheck-clean. */
class ShellScriptsTest {

    static final Path REPO = ScriptRun.repo();

    static List<Path> scripts() throws IOException {
        List<Path> scripts = new ArrayList<>(List.of(REPO.resolve("spindle"), REPO.resolve(".ci/run")));
        try (Stream<Path> walk = Files.walk(REPO.resolve("deploy"))) {
            for (Path file : walk.filter(Files::isRegularFile).sorted().collect(Collectors.toList())) {
                if (Files.readString(file).startsWith("#!") && Files.readAllLines(file).get(0).matches("#!.*\\b(ba)?sh\\b.*")) {
                    scripts.add(file);
                }
            }
        }
        return scripts;
    }

    @Test
    void scriptsAreFoundAndExecutable() throws IOException {
        List<Path> scripts = scripts();
        for (String expected : List.of("deploy/spindle-submit", "deploy/nightly/spindle-nightly", "deploy/gpu/discover-gpus.sh")) {
            assertTrue(scripts.contains(REPO.resolve(expected)), expected + " in " + scripts);
        }
        for (Path script : scripts) {
            assertTrue(Files.isExecutable(script), script + " is executable");
        }
    }

    @Test
    void shellcheckFindsNothing(@TempDir Path dir) throws IOException {
        assumeTrue(ScriptRun.onPath("shellcheck"), "shellcheck is not on PATH: shell scripts not linted");
        List<String> command = new ArrayList<>(List.of("shellcheck", "--external-sources"));
        scripts().forEach(p -> command.add(p.toString()));
        Path cronJob = dir.resolve("cronjob-command.sh");
        Files.writeString(cronJob, "#!/usr/bin/env bash\n" + DeployManifestsTest.cronJobScript(false));
        command.add(cronJob.toString());
        ScriptRun run = ScriptRun.run(java.util.Map.of(), command.toArray(String[]::new));
        assertEquals(0, run.exitCode(), run.out() + run.err());
    }
}
