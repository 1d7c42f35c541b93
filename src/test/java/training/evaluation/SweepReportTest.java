package training.evaluation;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A sweep's report from dictionary directories: held-out figures where evaluated, training figures otherwise. */
class SweepReportTest {

    @Test
    void tableAndPlotsFromEvaluationsOrTrainingMetrics(@TempDir Path dir) throws Exception {
        Path evaluated = dir.resolve("a");
        Files.createDirectories(evaluated);
        Files.writeString(evaluated.resolve("cfg.json"), "{\"architecture\":\"jumprelu\",\"d_sae\":64,"
                + "\"metadata\":{\"trained_architecture\":\"matryoshka\"}}");
        Path evaluation = dir.resolve("eval-a");
        Files.createDirectories(evaluation);
        Files.writeString(evaluation.resolve("evaluation.json"), "{\"reconstruction\":{\"l0\":12.5,\"fvu\":0.2,\"frac_alive\":0.9},"
                + "\"downstream\":{\"ce_loss_score\":0.93,\"kl_div_score\":0.95}}");
        Path trained = dir.resolve("b");
        Files.createDirectories(trained);
        Files.writeString(trained.resolve("cfg.json"), "{\"architecture\":\"standard\",\"d_sae\":64,"
                + "\"metadata\":{\"trained_architecture\":\"relu\"}}");
        Files.writeString(trained.resolve("metrics.jsonl"), "{\"step\":100,\"l0\":40,\"fvu\":0.5,\"deadFraction\":0.5}\n"
                + "{\"step\":200,\"l0\":30,\"fvu\":0.25,\"deadFraction\":0.25}\n");

        List<SweepReport.Row> rows = List.of(SweepReport.row("a", evaluated, evaluation), SweepReport.row("b", trained, null));
        assertEquals(new SweepReport.Row("a", "matryoshka", 64, 12.5, 0.2, 0.93, 0.95, 0.9, "evaluation"), rows.get(0));
        assertEquals(new SweepReport.Row("b", "relu", 64, 30, 0.25, Double.NaN, Double.NaN, 0.75, "training"), rows.get(1));

        Path out = dir.resolve("report");
        SweepReport.write(out, rows);
        String table = Files.readString(out.resolve("sweep.md"));
        assertTrue(table.contains("| a | matryoshka | 64 | 12.50 | 0.2000 | 0.9300 | 0.9500 | 0.900 | evaluation |"), table);
        assertTrue(table.contains("| b | relu | 64 | 30.00 | 0.2500 | - | - | 0.750 | training |"), table);
        JsonNode json = new ObjectMapper().readTree(out.resolve("sweep.json").toFile());
        assertTrue(json.at("/dictionaries/1/ce_loss_score").isNull());
        for (String png : new String[] {"fvu_vs_l0.png", "ce_score_vs_l0.png"}) {
            assertNotNull(ImageIO.read(out.resolve(png).toFile()), png + " is not an image");
        }
    }
}
