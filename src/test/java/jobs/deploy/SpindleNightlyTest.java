package jobs.deploy;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * deploy/nightly/spindle-nightly: the pipeline command it submits for a date, its dated log, exit
 * codes, and the lock that keeps two runs from overlapping. A fake submit script records its
 * arguments; one test goes through the real spindle-submit's --dry-run.
 */
class SpindleNightlyTest {

    static final Path REPO = ScriptRun.repo();
    static final String NIGHTLY = REPO.resolve("deploy/nightly/spindle-nightly").toString();

    @TempDir
    Path dir;
    Path conf;
    Path logs;
    Path fakeSubmit;

    @BeforeEach
    void fakes() throws IOException {
        conf = Files.writeString(dir.resolve("pipeline.conf"), "out = \"" + dir.resolve("out") + "\"\n");
        logs = dir.resolve("logs");
        // Records its arguments (one per line) and exits with FAKE_EXIT; with FAKE_STARTED set it
        // signals that it runs and waits for FAKE_RELEASE, so a test can hold the lock.
        fakeSubmit = ScriptRun.writeScript(dir.resolve("fake-submit"), """
                printf '%s\\n' "$@"
                if [[ -n "${FAKE_STARTED:-}" ]]; then
                  touch "$FAKE_STARTED"
                  for _ in $(seq 600); do [[ -e "$FAKE_RELEASE" ]] && break; sleep 0.1; done
                fi
                exit "${FAKE_EXIT:-0}"
                """);
    }

    Map<String, String> env() {
        Map<String, String> env = new HashMap<>();
        env.put("SPINDLE_CONF", conf.toString());
        env.put("SPINDLE_MASTER", "spark://head:7077");
        env.put("SPINDLE_LOG_DIR", logs.toString());
        env.put("SPINDLE_SUBMIT", fakeSubmit.toString());
        env.put("SPINDLE_OUT", null);
        env.put("SPINDLE_SUBMIT_OPTS", null);
        env.put("SPINDLE_LOCK_FILE", null);
        return env;
    }

    List<String> log(String date) throws IOException {
        return Files.readAllLines(logs.resolve("spindle-nightly-" + date + ".log"));
    }

    @Test
    void submitsThePipelineForTheDateAndLogsIt() throws IOException {
        Map<String, String> env = env();
        env.put("SPINDLE_OUT", "/shared/spindle");
        env.put("SPINDLE_SUBMIT_OPTS", "--num-executors 2 --gpu");
        ScriptRun run = ScriptRun.run(env, NIGHTLY, "2024-02-29");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals("", run.out() + run.err(), "quiet on success (cron mails output)");

        List<String> log = log("2024-02-29");
        List<String> expected = List.of("--master", "spark://head:7077", "--num-executors", "2", "--gpu",
                "pipeline", "--conf", conf.toString(), "--date", "2024-02-29", "--out", "/shared/spindle");
        int first = log.indexOf("--master");
        assertTrue(first > 0, log.toString());
        assertEquals(expected, log.subList(first, first + expected.size()), "what the submit received");
        assertTrue(log.get(log.size() - 1).endsWith("run for 2024-02-29 ended with exit code 0"), log.toString());
    }

    @Test
    void theRunsExitCodeIsTheScripts() throws IOException {
        Map<String, String> env = env();
        env.put("FAKE_EXIT", "3");
        ScriptRun run = ScriptRun.run(env, NIGHTLY, "2024-03-01");
        assertEquals(3, run.exitCode());
        Path log = logs.resolve("spindle-nightly-2024-03-01.log");
        assertTrue(run.err().startsWith("spindle-nightly: run for 2024-03-01 failed with exit code 3; log: " + log), run.err());
        assertTrue(run.err().contains("--date\n2024-03-01"), "the log's tail follows: " + run.err());
        assertTrue(log("2024-03-01").get(log("2024-03-01").size() - 1).endsWith("ended with exit code 3"));
    }

    @Test
    void withoutADateTheRunIsToday() throws IOException {
        LocalDate before = LocalDate.now();
        ScriptRun run = ScriptRun.run(env(), NIGHTLY);
        LocalDate after = LocalDate.now();
        assertEquals(0, run.exitCode(), run.err());
        try (var files = Files.list(logs)) {
            List<String> names = files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".log")).toList();
            assertEquals(1, names.size(), names.toString());
            assertTrue(names.get(0).equals("spindle-nightly-" + before + ".log") || names.get(0).equals("spindle-nightly-" + after + ".log"),
                    names.toString());
        }
    }

    @Test
    void aSecondRunExits75AtOnceWhileTheFirstHoldsTheLock() throws IOException, InterruptedException {
        Path started = dir.resolve("started");
        Path release = dir.resolve("release");
        Map<String, String> holding = env();
        holding.put("FAKE_STARTED", started.toString());
        holding.put("FAKE_RELEASE", release.toString());
        ScriptRun.Running first = ScriptRun.start(holding, NIGHTLY, "2024-04-01");
        try {
            while (!Files.exists(started) && first.process().isAlive()) {
                Thread.sleep(50);
            }
            assertTrue(Files.exists(started), "the first run started its submit");

            ScriptRun second = ScriptRun.run(env(), NIGHTLY, "2024-04-02");
            assertEquals(75, second.exitCode(), second.err());
            assertTrue(second.err().contains("another run holds") && second.err().contains("not starting the run for 2024-04-02"),
                    second.err());
            assertTrue(log("2024-04-02").stream().noneMatch(l -> l.equals("pipeline")), "the second run submitted nothing");
        } finally {
            Files.writeString(release, "");
        }
        assertEquals(0, first.finish().exitCode());
        assertEquals(0, ScriptRun.run(env(), NIGHTLY, "2024-04-02").exitCode(), "the lock is free again");
    }

    @Test
    void badInputIsOneClearLine() {
        ScriptRun notADate = ScriptRun.run(env(), NIGHTLY, "2023-02-29");
        assertEquals(2, notADate.exitCode());
        assertEquals("spindle-nightly: date 2023-02-29 is not a calendar date YYYY-MM-DD", notADate.err().strip());

        Map<String, String> noConf = env();
        noConf.put("SPINDLE_CONF", dir.resolve("missing.conf").toString());
        ScriptRun missing = ScriptRun.run(noConf, NIGHTLY, "2024-01-01");
        assertEquals(2, missing.exitCode());
        assertTrue(missing.err().contains("missing.conf: no such file"), missing.err());
        assertEquals(1, missing.err().strip().lines().count(), missing.err());
    }

    @Test
    void throughTheRealSpindleSubmit() throws IOException {
        Path sparkHome = dir.resolve("spark");
        ScriptRun.writeScript(sparkHome.resolve("bin/spark-submit"), "exit 9\n");
        Map<String, String> env = env();
        env.put("SPINDLE_SUBMIT", null);
        env.put("SPINDLE_SUBMIT_OPTS", "--dry-run --deploy-mode cluster");
        env.put("SPINDLE_MASTER", "yarn");
        env.put("SPARK_HOME", sparkHome.toString());
        env.put("SPINDLE_JAR", Files.writeString(dir.resolve("app.jar"), "").toString());
        ScriptRun run = ScriptRun.run(env, NIGHTLY, "2024-06-30");
        assertEquals(0, run.exitCode(), run.err());
        List<String> log = log("2024-06-30");
        int jar = log.indexOf(dir.resolve("app.jar").toString());
        assertTrue(jar > 0, log.toString());
        assertEquals(List.of("pipeline", "--conf", "pipeline.conf", "--date", "2024-06-30"), log.subList(jar + 1, jar + 6),
                "the configuration is shipped to the cluster-mode driver: " + log);
        assertTrue(log.contains(sparkHome.resolve("bin/spark-submit").toString()), log.toString());
    }
}
