package training.export;

/** The provenance SAELens records in cfg.json's {@code metadata}; hookHeadIndex and datasetPath may be null. */
public record SaeLensMetadata(String modelName, String hookName, Integer hookHeadIndex, int contextSize,
                              boolean prependBos, String datasetPath) {
}
