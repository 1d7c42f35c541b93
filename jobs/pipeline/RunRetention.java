package jobs.pipeline;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * Deletes old dated runs ({@code runs/YYYY-MM-DD/}) beyond the newest {@code keep}. Only
 * directories named as dates are touched, never the current run, and never the shared cache. A run
 * is first renamed to a hidden name, then deleted, so a deletion cut short never leaves something
 * that looks like a run (the next prune finishes it).
 */
final class RunRetention {

    private static final String DATE = "\\d{4}-\\d{2}-\\d{2}";
    private static final String DELETING = ".deleting-";

    private RunRetention() {
    }

    /** Dated runs under {@code runs}, oldest first. */
    static List<String> runs(Path runs) {
        List<String> names = new ArrayList<>();
        if (!Files.isDirectory(runs)) {
            return names;
        }
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(runs)) {
            for (Path dir : dirs) {
                String name = dir.getFileName().toString();
                if (Files.isDirectory(dir) && name.matches(DATE)) {
                    names.add(name);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + runs + ": " + e.getMessage(), e);
        }
        names.sort(Comparator.naturalOrder());
        return names;
    }

    /** Deletes all but the newest {@code keep} runs (0 keeps all), sparing {@code current}; returns the deleted ones. */
    static List<String> prune(Path runs, String current, int keep, PrintStream progress) {
        List<String> deleted = new ArrayList<>();
        finishInterruptedDeletions(runs);
        if (keep <= 0) {
            return deleted;
        }
        List<String> all = runs(runs);
        for (String name : all.subList(0, Math.max(0, all.size() - keep))) {
            if (name.equals(current)) {
                continue;
            }
            Path hidden = runs.resolve(DELETING + name);
            try {
                Files.move(runs.resolve(name), hidden, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                throw new UncheckedIOException("cannot remove old run " + runs.resolve(name) + ": " + e.getMessage(), e);
            }
            deleteTree(hidden);
            deleted.add(name);
            progress.printf("== retention: deleted run %s (keep-runs = %d)%n", name, keep);
        }
        return deleted;
    }

    private static void finishInterruptedDeletions(Path runs) {
        if (!Files.isDirectory(runs)) {
            return;
        }
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(runs, DELETING + "*")) {
            for (Path dir : dirs) {
                deleteTree(dir);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + runs + ": " + e.getMessage(), e);
        }
    }

    private static void deleteTree(Path root) {
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path p : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + root + ": " + e.getMessage(), e);
        }
    }
}
