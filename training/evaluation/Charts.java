package training.evaluation;

import javax.imageio.ImageIO;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Locale;

/**
 * Small PNG charts drawn with java.awt in headless mode: a bar chart (histograms) and a line chart
 * (metrics against training steps). Hand-drawn because two plain charts do not justify a charting
 * library and its transitive dependencies.
 */
public final class Charts {

    private static final int WIDTH = 720;
    private static final int HEIGHT = 420;
    private static final int LEFT = 70;
    private static final int RIGHT = 20;
    private static final int TOP = 40;
    private static final int BOTTOM = 55;

    private Charts() {
    }

    /** Bars of {@code counts} over consecutive bins starting at {@code start} of width {@code width}. */
    public static void bars(Path file, String title, String xLabel, String yLabel, double start, double width, long[] counts) {
        BufferedImage image = canvas();
        Graphics2D g = image.createGraphics();
        try {
            setUp(g);
            long max = 1;
            for (long c : counts) {
                max = Math.max(max, c);
            }
            double x0 = start;
            double x1 = start + width * counts.length;
            frame(g, title, xLabel, yLabel, x0, x1, 0, max);
            g.setColor(new Color(0x3b6ea8));
            for (int i = 0; i < counts.length; i++) {
                int left = px(start + i * width, x0, x1);
                int right = px(start + (i + 1) * width, x0, x1);
                int top = py(counts[i], 0, max);
                g.fillRect(left, top, Math.max(1, right - left - 1), HEIGHT - BOTTOM - top);
            }
        } finally {
            g.dispose();
        }
        write(image, file);
    }

    /** A polyline through (x[i], y[i]); non-finite points are skipped. */
    public static void line(Path file, String title, String xLabel, String yLabel, double[] x, double[] y) {
        BufferedImage image = canvas();
        Graphics2D g = image.createGraphics();
        try {
            setUp(g);
            double xMin = Double.POSITIVE_INFINITY;
            double xMax = Double.NEGATIVE_INFINITY;
            double yMin = Double.POSITIVE_INFINITY;
            double yMax = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < x.length; i++) {
                if (Double.isFinite(x[i]) && Double.isFinite(y[i])) {
                    xMin = Math.min(xMin, x[i]);
                    xMax = Math.max(xMax, x[i]);
                    yMin = Math.min(yMin, y[i]);
                    yMax = Math.max(yMax, y[i]);
                }
            }
            if (!(xMax >= xMin)) {
                xMin = 0;
                xMax = 1;
                yMin = 0;
                yMax = 1;
            }
            if (xMax == xMin) {
                xMax = xMin + 1;
            }
            yMin = Math.min(0, yMin);
            if (yMax == yMin) {
                yMax = yMin + 1;
            }
            frame(g, title, xLabel, yLabel, xMin, xMax, yMin, yMax);
            g.setColor(new Color(0xc0392b));
            g.setStroke(new BasicStroke(2f));
            int lastX = Integer.MIN_VALUE;
            int lastY = 0;
            for (int i = 0; i < x.length; i++) {
                if (!Double.isFinite(x[i]) || !Double.isFinite(y[i])) {
                    continue;
                }
                int px = px(x[i], xMin, xMax);
                int py = py(y[i], yMin, yMax);
                if (lastX != Integer.MIN_VALUE) {
                    g.drawLine(lastX, lastY, px, py);
                }
                g.fillOval(px - 2, py - 2, 5, 5);
                lastX = px;
                lastY = py;
            }
        } finally {
            g.dispose();
        }
        write(image, file);
    }

    /**
     * One polyline per named series through its (x, y) points sorted by x, with a legend: a sweep's
     * dictionaries, one series per architecture. Non-finite points are skipped.
     */
    public static void series(Path file, String title, String xLabel, String yLabel,
                              java.util.Map<String, double[][]> seriesByName) {
        BufferedImage image = canvas();
        Graphics2D g = image.createGraphics();
        Color[] palette = {new Color(0xc0392b), new Color(0x2471a3), new Color(0x229954), new Color(0xd68910),
                new Color(0x7d3c98), new Color(0x17a589), new Color(0x566573), new Color(0xcb4335)};
        try {
            setUp(g);
            double xMin = Double.POSITIVE_INFINITY;
            double xMax = Double.NEGATIVE_INFINITY;
            double yMin = Double.POSITIVE_INFINITY;
            double yMax = Double.NEGATIVE_INFINITY;
            for (double[][] points : seriesByName.values()) {
                for (int i = 0; i < points[0].length; i++) {
                    if (Double.isFinite(points[0][i]) && Double.isFinite(points[1][i])) {
                        xMin = Math.min(xMin, points[0][i]);
                        xMax = Math.max(xMax, points[0][i]);
                        yMin = Math.min(yMin, points[1][i]);
                        yMax = Math.max(yMax, points[1][i]);
                    }
                }
            }
            if (!(xMax >= xMin)) {
                xMin = 0;
                xMax = 1;
                yMin = 0;
                yMax = 1;
            }
            xMin = Math.min(0, xMin);
            yMin = Math.min(0, yMin);
            if (xMax == xMin) {
                xMax = xMin + 1;
            }
            if (yMax == yMin) {
                yMax = yMin + 1;
            }
            frame(g, title, xLabel, yLabel, xMin, xMax, yMin, yMax);
            int index = 0;
            for (java.util.Map.Entry<String, double[][]> entry : seriesByName.entrySet()) {
                Color color = palette[index % palette.length];
                g.setColor(color);
                g.setStroke(new BasicStroke(2f));
                double[][] points = entry.getValue();
                Integer[] order = new Integer[points[0].length];
                for (int i = 0; i < order.length; i++) {
                    order[i] = i;
                }
                java.util.Arrays.sort(order, java.util.Comparator.comparingDouble(i -> points[0][i]));
                int lastX = Integer.MIN_VALUE;
                int lastY = 0;
                for (int i : order) {
                    if (!Double.isFinite(points[0][i]) || !Double.isFinite(points[1][i])) {
                        continue;
                    }
                    int px = px(points[0][i], xMin, xMax);
                    int py = py(points[1][i], yMin, yMax);
                    if (lastX != Integer.MIN_VALUE) {
                        g.drawLine(lastX, lastY, px, py);
                    }
                    g.fillOval(px - 4, py - 4, 9, 9);
                    lastX = px;
                    lastY = py;
                }
                int ly = TOP + 16 + 16 * index;
                g.fillRect(WIDTH - RIGHT - 140, ly - 8, 10, 10);
                g.setColor(Color.DARK_GRAY);
                g.drawString(entry.getKey(), WIDTH - RIGHT - 125, ly + 1);
                index++;
            }
        } finally {
            g.dispose();
        }
        write(image, file);
    }

    private static BufferedImage canvas() {
        System.setProperty("java.awt.headless", "true");
        return new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
    }

    private static void setUp(Graphics2D g) {
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, WIDTH, HEIGHT);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
    }

    private static void frame(Graphics2D g, String title, String xLabel, String yLabel,
                              double x0, double x1, double y0, double y1) {
        g.setColor(Color.BLACK);
        g.drawLine(LEFT, HEIGHT - BOTTOM, WIDTH - RIGHT, HEIGHT - BOTTOM);
        g.drawLine(LEFT, TOP, LEFT, HEIGHT - BOTTOM);
        FontMetrics fm = g.getFontMetrics();
        for (int i = 0; i <= 5; i++) {
            double xv = x0 + (x1 - x0) * i / 5;
            String xs = label(xv);
            int px = px(xv, x0, x1);
            g.drawLine(px, HEIGHT - BOTTOM, px, HEIGHT - BOTTOM + 4);
            g.drawString(xs, px - fm.stringWidth(xs) / 2, HEIGHT - BOTTOM + 18);
            double yv = y0 + (y1 - y0) * i / 5;
            String ys = label(yv);
            int py = py(yv, y0, y1);
            g.drawLine(LEFT - 4, py, LEFT, py);
            g.drawString(ys, LEFT - 6 - fm.stringWidth(ys), py + 4);
        }
        g.drawString(xLabel, (LEFT + WIDTH - RIGHT - fm.stringWidth(xLabel)) / 2, HEIGHT - 12);
        Graphics2D rotated = (Graphics2D) g.create();
        rotated.rotate(-Math.PI / 2);
        rotated.drawString(yLabel, -(TOP + HEIGHT - BOTTOM + fm.stringWidth(yLabel)) / 2, 16);
        rotated.dispose();
        g.setFont(g.getFont().deriveFont(Font.BOLD, 14f));
        g.drawString(title, (WIDTH - g.getFontMetrics().stringWidth(title)) / 2, 24);
        g.setFont(g.getFont().deriveFont(Font.PLAIN, 12f));
    }

    private static String label(double v) {
        if (v != 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-2)) {
            return String.format(Locale.ROOT, "%.1e", v);
        }
        return String.format(Locale.ROOT, Math.abs(v - Math.rint(v)) < 1e-9 ? "%.0f" : "%.2f", v);
    }

    private static int px(double v, double x0, double x1) {
        return LEFT + (int) Math.round((v - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT));
    }

    private static int py(double v, double y0, double y1) {
        return HEIGHT - BOTTOM - (int) Math.round((v - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM));
    }

    private static void write(BufferedImage image, Path file) {
        try {
            if (!ImageIO.write(image, "png", file.toFile())) {
                throw new IOException("no PNG writer");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write chart " + file + ": " + e.getMessage(), e);
        }
    }
}
