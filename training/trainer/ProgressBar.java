package training.trainer;

import java.util.Locale;

/** The console progress prefix trainers print: a bar, the percentage and the estimated time left. */
public final class ProgressBar {

    private static final int WIDTH = 24;

    private ProgressBar() {
    }

    /** e.g. {@code [#########...............]  38%  ETA 4m12s}; ETA from the current step rate. */
    public static String render(long step, long total, double tokensPerSecond, long tokensPerStep) {
        double fraction = total > 0 ? Math.min(1.0, (double) step / total) : 0;
        int filled = (int) Math.round(fraction * WIDTH);
        String bar = "#".repeat(filled) + ".".repeat(WIDTH - filled);
        String eta = "";
        if (tokensPerSecond > 0 && step < total) {
            long seconds = Math.round((total - step) * (double) tokensPerStep / tokensPerSecond);
            eta = seconds >= 3600 ? String.format(Locale.ROOT, "  ETA %dh%02dm", seconds / 3600, seconds / 60 % 60)
                    : String.format(Locale.ROOT, "  ETA %dm%02ds", seconds / 60, seconds % 60);
        }
        return String.format(Locale.ROOT, "[%s] %3.0f%%%s", bar, 100 * fraction, eta);
    }
}
