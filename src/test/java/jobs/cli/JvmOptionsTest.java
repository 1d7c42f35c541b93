package jobs.cli;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;

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
}
