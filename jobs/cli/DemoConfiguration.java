package jobs.cli;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;

import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** The bundled demo configuration: conf/demo.conf beside the launcher, else the copy in the jar. */
public final class DemoConfiguration {

    private DemoConfiguration() {
    }

    public static Config load() {
        Path onDisk = Path.of("conf/demo.conf");
        if (Files.isRegularFile(onDisk)) {
            return ConfigFactory.parseFile(onDisk.toFile());
        }
        InputStream resource = DemoConfiguration.class.getResourceAsStream("/demo.conf");
        if (resource == null) {
            throw new IllegalStateException("the demo configuration (conf/demo.conf) is missing from this build");
        }
        try (Reader reader = new InputStreamReader(resource, StandardCharsets.UTF_8)) {
            return ConfigFactory.parseReader(reader);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the demo configuration: " + e.getMessage(), e);
        }
    }
}
