package jobs.deploy;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The schedules in deploy/: every Kubernetes manifest parses and is a resource, schedules are
 * 5-field cron expressions that never overlap runs, each run is {@code spindle pipeline --date},
 * names agree across files, and the CronJob's shell command works with spindle-submit.
 */
class DeployManifestsTest {

    static final Path REPO = ScriptRun.repo();
    static final Path DEPLOY = REPO.resolve("deploy");

    /** Every document of every YAML file under deploy/, by file name. */
    static Map<String, List<Map<String, Object>>> manifests() throws IOException {
        Map<String, List<Map<String, Object>>> all = new LinkedHashMap<>();
        List<Path> files;
        try (Stream<Path> walk = Files.walk(DEPLOY)) {
            files = walk.filter(p -> p.toString().endsWith(".yaml") || p.toString().endsWith(".yml")).sorted().collect(Collectors.toList());
        }
        for (Path file : files) {
            List<Map<String, Object>> documents = new ArrayList<>();
            try (Reader r = Files.newBufferedReader(file)) {
                for (Object doc : new Yaml(new SafeConstructor(new LoaderOptions())).loadAll(r)) {
                    if (doc == null) {
                        continue;  // an empty document between separators
                    }
                    assertTrue(doc instanceof Map, file + ": a document is not a mapping: " + doc);
                    documents.add(map(doc));
                }
            }
            all.put(DEPLOY.relativize(file).toString(), documents);
        }
        return all;
    }

    static List<Map<String, Object>> ofKind(String kind) throws IOException {
        return manifests().values().stream().flatMap(List::stream).filter(d -> kind.equals(d.get("kind"))).collect(Collectors.toList());
    }

    static Map<String, Object> only(String kind) throws IOException {
        List<Map<String, Object>> docs = ofKind(kind);
        assertEquals(1, docs.size(), kind + " documents: " + docs.size());
        return docs.get(0);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object o) {
        assertTrue(o instanceof Map, "a mapping: " + o);
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static Object at(Map<String, Object> doc, String... path) {
        Object o = doc;
        for (String step : path) {
            if (o instanceof List<?> list) {
                o = list.get(Integer.parseInt(step));
            } else {
                o = ((Map<String, Object>) o).get(step);
            }
            assertNotNull(o, String.join(".", path) + " in " + doc.get("kind"));
        }
        return o;
    }

    @Test
    void everyDocumentIsANamedKubernetesResource() throws IOException {
        Map<String, List<Map<String, Object>>> manifests = manifests();
        assertTrue(manifests.keySet().containsAll(List.of("k8s/spindle-nightly-cronjob.yaml", "k8s/spindle-scheduled-sparkapplication.yaml",
                "k8s/spindle-rbac.yaml", "k8s/spindle-output-pvc.yaml")), manifests.keySet().toString());
        manifests.forEach((file, documents) -> {
            assertFalse(documents.isEmpty(), file + " has no document");
            for (Map<String, Object> doc : documents) {
                for (String key : List.of("apiVersion", "kind")) {
                    assertTrue(doc.get(key) instanceof String s && !s.isBlank(), file + ": " + key + " missing in " + doc);
                }
                assertTrue(at(doc, "metadata", "name") instanceof String, file + ": metadata.name");
            }
        });
        assertEquals(List.of("ServiceAccount", "Role", "RoleBinding"),
                manifests.get("k8s/spindle-rbac.yaml").stream().map(d -> d.get("kind")).collect(Collectors.toList()));
    }

    @Test
    void cronCheckerAcceptsAndRejectsKnownSchedules() {
        for (String good : List.of("15 2 * * *", "*/10 0-6 1,15 JAN-MAR mon-fri", "0 0 * * 7", "59 23 31 12 0")) {
            assertNull(CronExpression.problem(good), good);
        }
        for (String bad : List.of("15 2 * *", "15 2 * * * *", "60 2 * * *", "15 24 * * *", "15 2 0 * *", "15 2 * 13 *", "15 2 * * 8",
                "*/0 * * * *", "5-1 * * * *", "15 2 * * MON-XYZ", "@daily", "a b c d e")) {
            assertNotNull(CronExpression.problem(bad), bad);
        }
    }

    @Test
    void schedulesAreCronAndNeverOverlap() throws IOException {
        for (String kind : List.of("CronJob", "ScheduledSparkApplication")) {
            Map<String, Object> doc = only(kind);
            assertNull(CronExpression.problem((String) at(doc, "spec", "schedule")), kind);
            assertEquals("Forbid", at(doc, "spec", "concurrencyPolicy"), kind + ": a night never overlaps the previous one");
        }
        assertEquals("batch/v1", only("CronJob").get("apiVersion"));
        assertEquals("sparkoperator.k8s.io/v1beta2", only("ScheduledSparkApplication").get("apiVersion"));
    }

    @Test
    void eachScheduleRunsThePipelineForADate() throws IOException {
        Map<String, Object> container = map(at(only("CronJob"), "spec", "jobTemplate", "spec", "template", "spec", "containers", "0"));
        List<String> words = new ArrayList<>();
        for (String key : List.of("command", "args")) {
            for (Object part : (List<?>) container.get(key)) {
                words.addAll(Arrays.asList(part.toString().split("\\s+")));
            }
        }
        assertTrue(words.contains("pipeline") && words.contains("--date"), words.toString());
        assertTrue(words.contains("\"$(date") && words.contains("+%F)\""), "the date comes from the clock in UTC: " + words);

        Map<String, Object> app = map(at(only("ScheduledSparkApplication"), "spec", "template"));
        assertEquals("jobs.cli.Spindle", app.get("mainClass"));
        List<?> arguments = (List<?>) app.get("arguments");
        assertEquals("pipeline", arguments.get(0));
        assertTrue(arguments.contains("--date"), arguments.toString());
    }

    @Test
    void sparkApplicationJavaOptionsKeepEveryJvmOption() throws IOException {
        Map<String, Object> app = map(at(only("ScheduledSparkApplication"), "spec", "template"));
        List<String> jvmOptions = SpindleSubmitTest.jvmOptions();
        for (String role : List.of("driver", "executor")) {
            List<String> options = Arrays.asList(((String) at(app, role, "javaOptions")).split("\\s+"));
            for (String option : jvmOptions) {
                assertTrue(options.contains(option), role + " javaOptions lack " + option + " (conf/jvm-options)");
            }
        }
    }

    @Test
    void namesAgreeAcrossFiles() throws IOException {
        String account = (String) at(only("ServiceAccount"), "metadata", "name");
        Map<String, Object> binding = only("RoleBinding");
        assertEquals(account, at(binding, "subjects", "0", "name"));
        assertEquals(at(only("Role"), "metadata", "name"), at(binding, "roleRef", "name"));
        Map<String, Object> cronPod = map(at(only("CronJob"), "spec", "jobTemplate", "spec", "template", "spec"));
        assertEquals(account, cronPod.get("serviceAccountName"));
        Map<String, Object> app = map(at(only("ScheduledSparkApplication"), "spec", "template"));
        assertEquals(account, at(app, "driver", "serviceAccount"));

        String claim = (String) at(only("PersistentVolumeClaim"), "metadata", "name");
        assertEquals(List.of("ReadWriteMany"), at(only("PersistentVolumeClaim"), "spec", "accessModes"), "driver and executors share it");
        assertEquals(claim, claimOf(cronPod));
        assertEquals(claim, claimOf(app));
        assertTrue(((String) at(cronPod, "containers", "0", "args", "0")).contains("options.claimName=" + claim), "executors mount it too");
    }

    private static String claimOf(Map<String, Object> podSpec) {
        for (Object volume : (List<?>) podSpec.get("volumes")) {
            Map<String, Object> v = map(volume);
            if (v.get("persistentVolumeClaim") != null) {
                return (String) map(v.get("persistentVolumeClaim")).get("claimName");
            }
        }
        throw new AssertionError("no persistentVolumeClaim volume in " + podSpec);
    }

    /** The CronJob container's shell command, with --dry-run after spindle-submit. */
    static String cronJobScript(boolean dryRun) throws IOException {
        String script = (String) at(only("CronJob"), "spec", "jobTemplate", "spec", "template", "spec", "containers", "0", "args", "0");
        assertTrue(script.contains("exec deploy/spindle-submit "), script);
        return dryRun ? script.replace("exec deploy/spindle-submit ", "exec deploy/spindle-submit --dry-run ") : script;
    }

    @Test
    void cronJobCommandWorksWithSpindleSubmit(@TempDir Path dir) throws IOException {
        Map<String, String> env = new HashMap<>();
        env.put("KUBERNETES_SERVICE_HOST", "10.0.0.1");
        env.put("KUBERNETES_SERVICE_PORT", "443");
        env.put("POD_NAMESPACE", "spindle");
        env.put("POD_NAME", "spindle-nightly-28000000-abcde");
        env.put("POD_IP", "10.1.2.3");
        env.put("SPINDLE_IMAGE", "registry.example.com/spindle:test");
        env.put("SPINDLE_JAR", Files.writeString(dir.resolve("spindle-submit.jar"), "").toString());
        Path sparkHome = dir.resolve("spark");
        ScriptRun.writeScript(sparkHome.resolve("bin/spark-submit"), "exit 9\n");
        env.put("SPARK_HOME", sparkHome.toString());
        LocalDate before = LocalDate.now(ZoneOffset.UTC);
        ScriptRun run = ScriptRun.run(env, "bash", "-c", cronJobScript(true));
        LocalDate after = LocalDate.now(ZoneOffset.UTC);
        assertEquals(0, run.exitCode(), run.err());

        List<String> lines = run.outLines();
        int jar = lines.lastIndexOf(env.get("SPINDLE_JAR"));
        List<String> args = lines.subList(jar + 1, lines.size());
        assertEquals(List.of("pipeline", "--conf", "/etc/spindle/pipeline.conf", "--date"), args.subList(0, 4));
        assertTrue(args.get(4).equals(before.toString()) || args.get(4).equals(after.toString()), args.toString());
        assertEquals("k8s://https://10.0.0.1:443", lines.get(lines.indexOf("--master") + 1));
        assertEquals("client", lines.get(lines.indexOf("--deploy-mode") + 1));
        assertTrue(lines.contains("spark.driver.host=10.1.2.3") && lines.contains("spark.kubernetes.driver.pod.name=spindle-nightly-28000000-abcde")
                && lines.contains("spark.kubernetes.container.image=registry.example.com/spindle:test"), lines.toString());
        String executorOptions = lines.stream().filter(l -> l.startsWith("spark.executor.extraJavaOptions=")).findFirst().orElseThrow();
        assertTrue(executorOptions.contains(" -Djna.tmpdir=/tmp/jna -Dlog4j2.configurationFile=/opt/spindle/conf/log4j2.properties"),
                "the CronJob's executor options are merged with Spindle's: " + executorOptions);
    }

    @Test
    void crontabExampleRunsTheNightlyScriptWithDocumentedSettings() throws IOException {
        List<String> lines = Files.readAllLines(DEPLOY.resolve("nightly/crontab.example"));
        String documented = Files.readString(DEPLOY.resolve("nightly/spindle-nightly")) + Files.readString(DEPLOY.resolve("spindle-submit"));
        Pattern assignment = Pattern.compile("^([A-Za-z_][A-Za-z0-9_]*)=.*");
        List<String> jobs = new ArrayList<>();
        List<String> variables = new ArrayList<>();
        for (String line : lines) {
            String l = line.strip();
            if (l.isEmpty() || l.startsWith("#")) {
                continue;
            }
            Matcher m = assignment.matcher(l);
            if (m.matches()) {
                variables.add(m.group(1));
                continue;
            }
            String[] fields = l.split("\\s+", 6);
            assertEquals(6, fields.length, "five time fields and a command: " + l);
            assertNull(CronExpression.problem(String.join(" ", Arrays.copyOf(fields, 5))), l);
            assertFalse(fields[5].contains("%"), "cron turns % into a newline: " + l);
            jobs.add(fields[5]);
        }
        assertTrue(jobs.stream().anyMatch(c -> c.endsWith("/deploy/nightly/spindle-nightly")), jobs.toString());
        assertTrue(variables.containsAll(List.of("SPINDLE_HOME", "SPINDLE_CONF", "SPINDLE_MASTER", "SPINDLE_LOG_DIR", "SPARK_HOME")),
                variables.toString());
        for (String v : variables) {
            if (v.startsWith("SPINDLE_")) {
                assertTrue(documented.contains("#   " + v + " "), v + " is documented at the top of the scripts");
            }
        }
    }
}
