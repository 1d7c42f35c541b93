package analysis;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * Layer-by-position heatmaps as one PNG, panels stacked (java.awt, headless; hand-drawn for the
 * reason {@code training.evaluation.Charts} is). Rows are layers (0 at the top), columns token
 * positions labelled with their pieces; the colour scale is diverging (blue, white, red) when the
 * range spans zero (one magnitude scale for both signs) and sequential (white to red) otherwise;
 * each cell prints its value.
 */
public final class Heatmap {

    /** One panel: {@code values[layer][position]}. */
    public record Panel(String title, double[][] values) {
    }

    private static final int CELL_W = 56;
    private static final int CELL_H = 26;
    private static final int LEFT = 80;
    private static final int PANEL_TOP = 34;
    private static final int LABELS = 70;

    private Heatmap() {
    }

    /** Panels drawn on one colour range [low, high]. */
    public static void write(Path file, List<Panel> panels, List<String> columnLabels, double low, double high) {
        System.setProperty("java.awt.headless", "true");
        int columns = columnLabels.size();
        int rowsTotal = 0;
        for (Panel p : panels) {
            rowsTotal += p.values().length;
        }
        int width = Math.max(520, LEFT + columns * CELL_W + 20);
        int height = panels.size() * (PANEL_TOP + LABELS) + rowsTotal * CELL_H + 10;
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            int y = 0;
            for (Panel p : panels) {
                g.setColor(Color.BLACK);
                g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
                g.drawString(p.title(), LEFT, y + 22);
                g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 11));
                FontMetrics fm = g.getFontMetrics();
                int top = y + PANEL_TOP;
                double[][] v = p.values();
                for (int l = 0; l < v.length; l++) {
                    g.setColor(Color.BLACK);
                    g.drawString("layer " + l, 10, top + l * CELL_H + CELL_H / 2 + 4);
                    for (int t = 0; t < v[l].length; t++) {
                        int x = LEFT + t * CELL_W;
                        g.setColor(colour(v[l][t], low, high));
                        g.fillRect(x, top + l * CELL_H, CELL_W - 1, CELL_H - 1);
                        g.setColor(Color.BLACK);
                        String s = Double.isFinite(v[l][t]) ? String.format(Locale.ROOT, "%.2f", Math.abs(v[l][t]) < 5e-3 ? 0.0 : v[l][t]) : "nan";
                        g.drawString(s, x + (CELL_W - fm.stringWidth(s)) / 2, top + l * CELL_H + CELL_H / 2 + 4);
                    }
                }
                int labelsTop = top + v.length * CELL_H + 4;
                for (int t = 0; t < columns; t++) {
                    Graphics2D r = (Graphics2D) g.create();
                    r.translate(LEFT + t * CELL_W + CELL_W / 2 + 4, labelsTop);
                    r.rotate(Math.PI / 3);
                    r.setColor(Color.DARK_GRAY);
                    String label = columnLabels.get(t);
                    r.drawString(label.length() > 10 ? label.substring(0, 10) : label, 0, 0);
                    r.dispose();
                }
                y = labelsTop + LABELS - 4;
            }
        } finally {
            g.dispose();
        }
        try {
            if (!ImageIO.write(image, "png", file.toFile())) {
                throw new IOException("no PNG writer");
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static Color colour(double v, double low, double high) {
        if (!Double.isFinite(v)) {
            return Color.LIGHT_GRAY;
        }
        if (low < 0 && high > 0) {
            double s = Math.min(1, Math.abs(v) / Math.max(-low, high));
            int fade = (int) Math.round(255 * (1 - s));
            return v >= 0 ? new Color(255, fade, fade) : new Color(fade, fade, 255);
        }
        double s = high > low ? Math.max(0, Math.min(1, (v - low) / (high - low))) : 0;
        int fade = (int) Math.round(255 * (1 - s));
        return new Color(255, fade, fade);
    }
}
