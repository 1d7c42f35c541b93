package jobs.cli;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The launcher's JVM options (conf/jvm-options) and the test JVM's (pom.xml) must not drift apart. */
class JvmOptionsTest {

    @Test
    void launcherAndPomListTheSameSparkFlags() throws IOException {
        List<String> launcher = Files.readAllLines(Path.of("conf/jvm-options")).stream()
                .map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#") && !l.equals("-Doffline=true"))
                .collect(Collectors.toList());
        String pom = Files.readString(Path.of("pom.xml"));
        String property = pom.substring(pom.indexOf("<spark.jvm.flags>") + "<spark.jvm.flags>".length(),
                pom.indexOf("</spark.jvm.flags>"));
        assertEquals(launcher, Arrays.asList(property.strip().split("\\s+")));
    }

    /** Tests run with the native environment users get (conf/native-env), as surefire's environment variables. */
    @Test
    void launcherAndPomSetTheSameNativeEnvironment() throws IOException {
        String pom = Files.readString(Path.of("pom.xml"));
        List<String> lines = Files.readAllLines(Path.of("conf/native-env")).stream()
                .filter(l -> !l.isBlank() && !l.startsWith("#")).toList();
        assertEquals(2, lines.size(), lines.toString());
        for (String kv : lines) {
            String name = kv.substring(0, kv.indexOf('='));
            String value = kv.substring(kv.indexOf('=') + 1);
            assertTrue(pom.contains("<" + name + ">" + value + "</" + name + ">"), kv + " in pom.xml's surefire environmentVariables");
            assertEquals(value, System.getenv(name), kv + " in this test JVM's environment");
        }
    }
}
