package training.sae;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SaeConfigTest {

    private static String error(Runnable build) {
        String message = assertThrows(IllegalArgumentException.class, build::run).getMessage();
        assertFalse(message.contains("\n"), "one-line error expected: " + message);
        return message;
    }

    @Test
    void badSettingsFailWithOneLineErrorsNamingThem() {
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.RELU, 64, 0).build()).contains("d_sae is 0"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.TOPK, 64, 128).k(200).build())
                .contains("k is 200 but d_sae is 128"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, 64, 128).bandwidth(0).build())
                .contains("bandwidth"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.RELU, 64, 128).batchSize(4096).totalTokens(100).build())
                .contains("less than one batch"));
        assertTrue(error(() -> SaeConfig.Architecture.parse("gatd")).contains("unknown SAE architecture 'gatd'"));
        assertEquals(SaeConfig.Architecture.MATRYOSHKA, SaeConfig.Architecture.parse("matryoshka_batchtopk"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, 64, 128)
                .jumpReluSparsity(SaeConfig.JumpReluSparsity.QUADRATIC).build()).contains("target-l0"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.JUMPRELU, 64, 128).thresholdInit(0).build())
                .contains("need a positive target-l0"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.MATRYOSHKA, 64, 128)
                .matryoshkaWidths(java.util.List.of(64, 32)).build()).contains("strictly increasing"));
        assertTrue(error(() -> SaeConfig.builder(SaeConfig.Architecture.GATED, 64, 128).dOut(32).build()).contains("gated transcoder"));
    }

    @Test
    void defaultsFollowTheSharedRecipe() {
        SaeConfig c = SaeConfig.builder(SaeConfig.Architecture.parse("BatchTopK"), 768, 16384).build();
        assertEquals(SaeConfig.Architecture.BATCHTOPK, c.architecture());
        assertEquals(384, c.effectiveKAux());
        assertEquals(3e-4, c.learningRate());
        assertEquals(0.1, c.decoderInitNorm());
        assertEquals(1.0, c.gradClipNorm());
        assertEquals(0.2, c.lrDecayFraction());
        assertEquals(100_000_000L / 4096, c.totalSteps());
    }
}
