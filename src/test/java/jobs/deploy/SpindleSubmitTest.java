package jobs.deploy;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * deploy/spindle-submit: the spark-submit command it builds (--dry-run) for each kind of master,
 * the exact arguments a spark-submit receives, and one clear line for bad input. A fake SPARK_HOME
 * stands in for Spark; SPINDLE_JAR keeps the wrapper from building.
 */
class SpindleSubmitTest {

    static final Path REPO = ScriptRun.repo();
    static final String SUBMIT = REPO.resolve("deploy/spindle-submit").toString();

    @TempDir
    Path dir;
    Path jar;
    Path sparkHome;

    @BeforeEach
    void fakeSparkAndJar() throws IOException {
        jar = Files.writeString(dir.resolve("spindle-submit.jar"), "not read by --dry-run");
        sparkHome = dir.resolve("spark");
        // Prints what it was given, one argument per line, and exits with FAKE_EXIT.
        ScriptRun.writeScript(sparkHome.resolve("bin/spark-submit"),
                "echo \"OPT_OUT_TRACKING=${OPT_OUT_TRACKING:-unset}\"\nprintf '%s\\n' \"$@\"\nexit \"${FAKE_EXIT:-0}\"\n");
    }

    Map<String, String> env() {
        Map<String, String> env = new HashMap<>();
        env.put("SPARK_HOME", sparkHome.toString());
        env.put("SPINDLE_JAR", jar.toString());
        env.put("SPINDLE_CLASSPATH", null);
        env.put("PATH", ScriptRun.pathWithoutSpark());
        return env;
    }

    static List<String> nativeEnv() {
        try {
            return java.nio.file.Files.readAllLines(Path.of("conf/native-env")).stream()
                    .filter(l -> !l.isBlank() && !l.startsWith("#")).toList();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    ScriptRun submit(Map<String, String> env, String... args) {
        List<String> command = new ArrayList<>(List.of(SUBMIT));
        command.addAll(Arrays.asList(args));
        return ScriptRun.run(env, command.toArray(String[]::new));
    }

    /** A dry run's command line: env, assignments, program and its arguments. */
    record Command(List<String> lines, int jarIndex) {

        static Command of(ScriptRun run, Path jar) {
            assertEquals(0, run.exitCode(), run.err());
            List<String> lines = run.outLines();
            assertEquals("env", lines.get(0), run.out());
            assertEquals("OPT_OUT_TRACKING=true", lines.get(1));
            int jarIndex = lines.lastIndexOf(jar.toString());
            assertTrue(jarIndex > 0, "the application jar is passed: " + run.out());
            return new Command(lines, jarIndex);
        }

        /** Values of a spark-submit option (before the jar), in order. */
        List<String> values(String option) {
            List<String> values = new ArrayList<>();
            for (int i = 0; i < jarIndex - 1; i++) {
                if (lines.get(i).equals(option)) {
                    values.add(lines.get(i + 1));
                }
            }
            return values;
        }

        String value(String option) {
            List<String> values = values(option);
            assertEquals(1, values.size(), option + " once: " + lines);
            return values.get(0);
        }

        Map<String, String> confs() {
            Map<String, String> confs = new LinkedHashMap<>();
            for (String kv : values("--conf")) {
                confs.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
            }
            return confs;
        }

        List<String> javaOptions(String key) {
            return Arrays.asList(confs().get(key).split(" "));
        }

        /** Spindle's command and arguments, after the jar. */
        List<String> spindleArgs() {
            return lines.subList(jarIndex + 1, lines.size());
        }
    }

    static List<String> jvmOptions() throws IOException {
        return Files.readAllLines(REPO.resolve("conf/jvm-options")).stream()
                .map(String::strip).filter(l -> !l.isEmpty() && !l.startsWith("#")).collect(Collectors.toList());
    }

    static Properties sparkDefaults(String name) throws IOException {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(REPO.resolve("deploy").resolve(name))) {
            p.load(r);
        }
        return p;
    }

    @Test
    void yarnClusterModeShipsTheConfigurationAndLogging() throws IOException {
        Path conf = Files.writeString(dir.resolve("nightly.conf"), "out = \"/shared/spindle\"\n");
        Command c = Command.of(submit(env(), "--dry-run", "--master", "yarn", "--deploy-mode", "cluster", "--num-executors", "3",
                "pipeline", "--conf", conf.toString(), "--date", "2024-05-01"), jar);

        assertEquals(sparkHome.resolve("bin/spark-submit").toString(), c.lines().get(2));
        assertEquals("yarn", c.value("--master"));
        assertEquals("cluster", c.value("--deploy-mode"));
        assertEquals("jobs.cli.Spindle", c.value("--class"));
        assertEquals("3", c.value("--num-executors"));
        assertEquals(REPO.resolve("deploy/spark-defaults.cpu.conf").toString(), c.value("--properties-file"));
        assertEquals(List.of("pipeline", "--conf", "nightly.conf", "--date", "2024-05-01"), c.spindleArgs(),
                "the driver reads the shipped configuration by its base name");
        List<String> files = Arrays.asList(c.value("--files").split(","));
        assertTrue(files.contains(conf.toString()), files.toString());
        assertTrue(files.contains(REPO.resolve("conf/log4j2.properties").toString()), files.toString());

        Map<String, String> confs = c.confs();
        List<String> driver = c.javaOptions("spark.driver.extraJavaOptions");
        List<String> executor = c.javaOptions("spark.executor.extraJavaOptions");
        for (String option : jvmOptions()) {
            assertTrue(driver.contains(option), "driver has " + option + ": " + driver);
            assertTrue(executor.contains(option), "executor has " + option + ": " + executor);
        }
        for (List<String> options : List.of(driver, executor)) {
            assertTrue(options.contains("-Dlog4j2.configurationFile=log4j2.properties"), options.toString());
            assertTrue(options.contains("-Dorg.bytedeco.javacpp.cachedir=/tmp/javacpp"), options.toString());
            assertEquals(options.size(), options.stream().distinct().count(), "no option twice: " + options);
        }
        Properties cpu = sparkDefaults("spark-defaults.cpu.conf");
        // The properties file's executor options survive our --conf, which would otherwise replace them.
        for (String option : cpu.getProperty("spark.executor.extraJavaOptions").split(" ")) {
            assertTrue(executor.contains(option), option + " in " + executor);
        }
        assertEquals("true", confs.get("spark.executorEnv.OPT_OUT_TRACKING"));
        assertEquals("true", confs.get("spark.yarn.appMasterEnv.OPT_OUT_TRACKING"));
        // Idle native pools sleep instead of spinning, on executors and the cluster-mode driver (conf/native-env).
        for (String kv : nativeEnv()) {
            String name = kv.substring(0, kv.indexOf('='));
            String value = kv.substring(kv.indexOf('=') + 1);
            assertEquals(value, confs.get("spark.executorEnv." + name), kv);
            assertEquals(value, confs.get("spark.yarn.appMasterEnv." + name), kv);
            assertEquals(value, cpu.getProperty("spark.executorEnv." + name), "spark-defaults.cpu.conf: " + kv);
        }
        assertEquals(cpu.getProperty("spark.task.cpus"), confs.get("spark.executorEnv.OMP_NUM_THREADS"), "OpenMP threads = task cpus");
        assertFalse(confs.containsKey("spark.executor.resource.gpu.amount"), "no GPUs without --gpu");
    }

    @Test
    void kubernetesGpuClientModeWithWrapperOptions() throws IOException {
        Command c = Command.of(submit(env(), "--dry-run", "--master", "k8s://https://10.0.0.1:6443", "--gpu", "--omp-threads", "3",
                "--memory-overhead", "12g", "--javacpp-cache", "/scratch/javacpp", "--conf", "spark.executor.instances=5",
                "pipeline", "--conf", "conf/demo.conf", "--date", "today"), jar);

        assertEquals("k8s://https://10.0.0.1:6443", c.value("--master"));
        assertEquals("client", c.value("--deploy-mode"));
        assertEquals(REPO.resolve("deploy/spark-defaults.gpu.conf").toString(), c.value("--properties-file"));
        assertEquals(List.of("pipeline", "--conf", "conf/demo.conf", "--date", "today"), c.spindleArgs(),
                "client mode: the driver runs here and reads the path as given");
        assertTrue(c.values("--files").isEmpty(), "nothing to ship in client mode: " + c.lines());

        Map<String, String> confs = c.confs();
        assertEquals("1", confs.get("spark.executor.resource.gpu.amount"));
        assertEquals("1", confs.get("spark.task.resource.gpu.amount"));
        assertEquals(REPO.resolve("deploy/gpu/discover-gpus.sh").toString(), confs.get("spark.executor.resource.gpu.discoveryScript"));
        assertEquals("3", confs.get("spark.executorEnv.OMP_NUM_THREADS"));
        assertEquals("12g", confs.get("spark.executor.memoryOverhead"));
        assertEquals("5", confs.get("spark.executor.instances"));
        for (String key : List.of("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")) {
            List<String> options = c.javaOptions(key);
            assertTrue(options.contains("-Dorg.bytedeco.javacpp.cachedir=/scratch/javacpp"), options.toString());
            assertFalse(options.contains("-Dorg.bytedeco.javacpp.cachedir=/tmp/javacpp"), "the file's cache dir is replaced: " + options);
        }
        // The driver runs here: its logging file is this checkout's.
        assertTrue(c.javaOptions("spark.driver.extraJavaOptions")
                .contains("-Dlog4j2.configurationFile=" + REPO.resolve("conf/log4j2.properties")));
    }

    @Test
    void taskCpusFromTheUserWinOverThePropertiesFile() {
        Command c = Command.of(submit(env(), "--dry-run", "--master", "spark://head:7077", "--conf", "spark.task.cpus=4",
                "cache", "--help"), jar);
        assertEquals("4", c.confs().get("spark.executorEnv.OMP_NUM_THREADS"));
        assertEquals("4", c.confs().get("spark.task.cpus"));
        assertEquals(List.of("cache", "--help"), c.spindleArgs());
        assertEquals("spindle cache", c.value("--name"));
    }

    @Test
    void aPropertiesFileOfOurOwnSetsMasterThreadsCacheAndDiscovery() throws IOException {
        Path properties = Files.writeString(dir.resolve("site.conf"), String.join("\n",
                "# site settings",
                "spark.master                yarn",
                "spark.task.cpus=3",
                "  spark.executor.extraJavaOptions : -Dsite.flag=1 -Dorg.bytedeco.javacpp.cachedir=/local/jcpp",
                "spark.executor.resource.gpu.discoveryScript /opt/site/gpus.sh",
                ""));
        Command c = Command.of(submit(env(), "--dry-run", "--properties-file", properties.toString(), "--gpu", "pipeline",
                "--conf", "x.conf"), jar);
        assertEquals("yarn", c.value("--master"), "the master from the properties file");
        assertEquals(properties.toString(), c.value("--properties-file"));
        Map<String, String> confs = c.confs();
        assertEquals("3", confs.get("spark.executorEnv.OMP_NUM_THREADS"));
        assertEquals("/opt/site/gpus.sh", confs.get("spark.executor.resource.gpu.discoveryScript"));
        List<String> executor = c.javaOptions("spark.executor.extraJavaOptions");
        assertTrue(executor.contains("-Dsite.flag=1"), executor.toString());
        for (String key : List.of("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions")) {
            assertTrue(c.javaOptions(key).contains("-Dorg.bytedeco.javacpp.cachedir=/local/jcpp"), key + ": " + c.javaOptions(key));
        }
    }

    @Test
    void standaloneClusterModeKeepsTheConfigurationPath() {
        Command c = Command.of(submit(env(), "--dry-run", "--master", "spark://head:7077", "--deploy-mode", "cluster",
                "pipeline", "--conf", "/shared/nightly.conf"), jar);
        assertEquals(List.of("pipeline", "--conf", "/shared/nightly.conf"), c.spindleArgs(),
                "a standalone cluster driver does not get --files in its working directory");
        assertTrue(c.values("--files").isEmpty(), c.lines().toString());
    }

    @Test
    void kubernetesClusterModeUploadsThroughTheUploadPath() throws IOException {
        Path conf = Files.writeString(dir.resolve("k8s.conf"), "out = \"/data/spindle\"\n");
        ScriptRun refused = submit(env(), "--dry-run", "--master", "k8s://https://api:6443", "--deploy-mode", "cluster",
                "pipeline", "--conf", conf.toString());
        assertEquals(2, refused.exitCode());
        assertOneLine(refused, "spark.kubernetes.file.upload.path");

        Command c = Command.of(submit(env(), "--dry-run", "--master", "k8s://https://api:6443", "--deploy-mode", "cluster",
                "--conf", "spark.kubernetes.file.upload.path=s3a://bucket/spindle", "pipeline", "--conf=" + conf), jar);
        assertEquals(List.of("pipeline", "--conf=k8s.conf"), c.spindleArgs());
        assertEquals(List.of(conf.toString()), Arrays.asList(c.value("--files").split(",")));
        assertEquals("true", c.confs().get("spark.kubernetes.driverEnv.OPT_OUT_TRACKING"));
    }

    @Test
    void sparkSubmitReceivesExactlyTheDryRunArgumentsAndItsExitCodeIsKept() {
        String[] args = {"--master", "yarn", "--name", "a name with spaces", "--conf", "spark.executor.extraJavaOptions=-Dx=1 -Dy=2",
                "forward", "--model", "models/tinystories-656k", "--text", "Once upon a time, there was", "--out", "x.safetensors"};
        List<String> dryRun = Command.of(submit(env(), prepend("--dry-run", args)), jar).lines();

        Map<String, String> env = env();
        env.put("FAKE_EXIT", "7");
        ScriptRun real = submit(env, args);
        assertEquals(7, real.exitCode(), "spark-submit's exit code: " + real.err());
        List<String> received = real.outLines();
        assertEquals("OPT_OUT_TRACKING=true", received.get(0), "spark-submit runs without telemetry");
        int program = 2;
        while (dryRun.get(program).matches("[A-Z_]+=.*")) {
            program++; // conf/native-env's assignments, unless this JVM's environment has them already
        }
        assertEquals(dryRun.subList(program + 1, dryRun.size()), received.subList(1, received.size()));
        assertTrue(received.contains("a name with spaces") && received.contains("Once upon a time, there was"), received.toString());
        String executorOptions = received.stream().filter(l -> l.startsWith("spark.executor.extraJavaOptions=")).findFirst().orElseThrow();
        assertTrue(executorOptions.endsWith(" -Dx=1 -Dy=2"), "the user's executor options come last: " + executorOptions);
        assertEquals(1, received.stream().filter(l -> l.startsWith("spark.executor.extraJavaOptions=")).count());
    }

    @Test
    void localMasterWithoutSparkRunsSparksSubmitClassOnTheBundledClasspath() {
        Map<String, String> env = env();
        env.put("SPARK_HOME", null);
        env.put("SPINDLE_CLASSPATH", "/deps/a.jar:/deps/b.jar");
        ScriptRun run = submit(env, "--dry-run", "--master", "local[2]", "--driver-memory", "3g", "forward", "--help");
        Command c = Command.of(run, jar);
        List<String> lines = c.lines();
        assertEquals("java", lines.get(2));
        int cp = lines.indexOf("-cp");
        assertEquals(jar + ":/deps/a.jar:/deps/b.jar", lines.get(cp + 1));
        assertEquals("org.apache.spark.deploy.SparkSubmit", lines.get(cp + 2));
        List<String> javaOptions = lines.subList(3, cp);
        for (String option : jvmOptionsUnchecked()) {
            assertTrue(javaOptions.contains(option), "the driver JVM itself gets " + option);
        }
        assertTrue(javaOptions.contains("-Dlog4j2.configurationFile=" + REPO.resolve("conf/log4j2.properties")), javaOptions.toString());
        assertTrue(javaOptions.contains("-Xmx3g"), javaOptions.toString());
        assertEquals("local[2]", c.value("--master"));
        assertTrue(c.values("--properties-file").isEmpty(), "local runs keep local defaults");
        assertEquals(List.of("forward", "--help"), c.spindleArgs());
    }

    @Test
    void clusterMasterWithoutSparkSubmitNamesSparkHome() {
        Map<String, String> env = env();
        env.put("SPARK_HOME", null);
        ScriptRun run = submit(env, "--master", "yarn", "pipeline", "--conf", "conf/demo.conf");
        assertEquals(2, run.exitCode());
        assertOneLine(run, "set SPARK_HOME");

        env.put("SPARK_HOME", dir.resolve("no-spark").toString());
        ScriptRun wrongHome = submit(env, "--master", "local[2]", "forward", "--help");
        assertEquals(2, wrongHome.exitCode());
        assertOneLine(wrongHome, "has no bin/spark-submit");
    }

    @Test
    void badInputIsOneClearLine() throws IOException {
        Map<String, List<String>> cases = new LinkedHashMap<>();
        cases.put("is not one of local[N], spark://HOST:PORT, yarn", List.of("--master", "mesos://m:5050", "forward"));
        cases.put("--omp-threads 0 is not a positive whole number", List.of("--master", "yarn", "--omp-threads", "0", "forward"));
        cases.put("--memory-overhead lots is not a size", List.of("--master", "yarn", "--memory-overhead", "lots", "forward"));
        cases.put("always runs jobs.cli.Spindle", List.of("--class", "my.Main", "forward"));
        cases.put("no spindle command given", List.of("--master", "yarn"));
        cases.put("--deploy-mode cluster needs a cluster master", List.of("--master", "local[2]", "--deploy-mode", "cluster", "forward"));
        cases.put("--gpu needs a cluster master", List.of("--master", "local[2]", "--gpu", "forward"));
        cases.put("--conf conf/demo.conf is not key=value", List.of("--master", "yarn", "--conf", "conf/demo.conf", "pipeline"));
        cases.put("--master needs a value", List.of("--master"));
        cases.put("no such file (it is shipped to the driver from here)",
                List.of("--master", "yarn", "--deploy-mode", "cluster", "pipeline", "--conf", dir.resolve("missing.conf").toString()));
        cases.put("--properties-file /nowhere.conf: no such file", List.of("--properties-file", "/nowhere.conf", "forward"));
        cases.put("--javacpp-cache tmp/javacpp: give an absolute path", List.of("--master", "yarn", "--javacpp-cache", "tmp/javacpp", "forward"));
        for (Map.Entry<String, List<String>> e : cases.entrySet()) {
            ScriptRun run = submit(env(), prepend("--dry-run", e.getValue().toArray(String[]::new)));
            assertEquals(2, run.exitCode(), e.getValue() + ": " + run.err());
            assertOneLine(run, e.getKey());
            assertEquals("", run.out(), "no command printed for " + e.getValue());
        }

        Map<String, String> missingJar = env();
        missingJar.put("SPINDLE_JAR", dir.resolve("gone.jar").toString());
        assertOneLine(submit(missingJar, "--master", "yarn", "forward"), "SPINDLE_JAR=" + dir.resolve("gone.jar") + ": no such file");
    }

    @Test
    void helpExplainsTheOptions() {
        ScriptRun run = submit(env(), "--help");
        assertEquals(0, run.exitCode());
        for (String option : List.of("--master", "--deploy-mode", "--gpu", "--omp-threads", "--memory-overhead", "--javacpp-cache",
                "--properties-file", "--dry-run")) {
            assertTrue(run.out().contains(option), option + " in the help");
        }
    }

    static void assertOneLine(ScriptRun run, String expected) {
        assertTrue(run.err().contains(expected), "expected '" + expected + "' in: " + run.err());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        assertTrue(run.err().startsWith("spindle-submit: "), run.err());
    }

    static String[] prepend(String first, String... rest) {
        String[] all = new String[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    static List<String> jvmOptionsUnchecked() {
        try {
            return jvmOptions();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
