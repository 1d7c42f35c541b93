package training.drift;

import activations.tokenizer.JsonFiles;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.annotation.JsonNaming;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * How one dictionary's features drifted from another's on the same hook, as {@code drift.json}
 * (snake_case keys). Matching is by decoder-direction cosine.
 *
 * <p>The per-feature arrays ({@code best_old_for_new}, {@code best_old_cosine}, {@code best_new_for_old},
 * {@code best_new_cosine}) are the plain geometry over ALL decoders and back {@code matched_share}.
 * Everything else is over live features only, matched among live features ({@code matched_share_live},
 * {@code mutual_matches}, {@code cosine_histogram}, {@code new_features}, {@code vanished_features}):
 * a feature that never fired has a meaningless decoder. A side without feature tables counts every
 * feature as live, so without any the two views coincide. A best match of -1 (cosine -1) means the
 * other run has no live feature at all.
 *
 * @param matchedShare share of new features whose best old cosine is at least {@code threshold}
 * @param matchedShareLive the same over live new features matched against live old ones (0 if none is live)
 * @param mutualMatches live pairs that are each other's best match with cosine at least {@code threshold}
 * @param cosineHistogram live new features' best live-old cosine in {@link FeatureDrift#HISTOGRAM_BINS}
 *                        equal bins over [0, 1] (bin b is [b/n, (b+1)/n); negatives in bin 0, 1.0 in the last)
 * @param newFeatures live new features whose best live-old cosine is below {@code threshold}, by index
 * @param vanishedFeatures live old features whose best live-new cosine is below {@code threshold}, by index
 */
@JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
public record DriftReport(String oldDictionary, String newDictionary, String hook, int decoderWidth, int oldDSae,
                          int newDSae, double threshold, boolean oldLivenessKnown, boolean newLivenessKnown, int oldLive,
                          int newLive, double matchedShare, double matchedShareLive, int mutualMatches,
                          long[] cosineHistogram, List<Unmatched> newFeatures, List<Unmatched> vanishedFeatures,
                          int[] bestOldForNew, float[] bestOldCosine, int[] bestNewForOld, float[] bestNewCosine) {

    public static final String FILE_NAME = "drift.json";

    /** A feature without a counterpart: its index in its own run and its best match in the other. */
    @JsonNaming(PropertyNamingStrategies.SnakeCaseStrategy.class)
    public record Unmatched(int feature, int bestMatch, double cosine) {
    }

    /** The same report naming the dictionaries as the user gave them (e.g. URIs of copies compared locally). */
    public DriftReport naming(String oldName, String newName) {
        return new DriftReport(oldName, newName, hook, decoderWidth, oldDSae, newDSae, threshold, oldLivenessKnown,
                newLivenessKnown, oldLive, newLive, matchedShare, matchedShareLive, mutualMatches, cosineHistogram, newFeatures,
                vanishedFeatures, bestOldForNew, bestOldCosine, bestNewForOld, bestNewCosine);
    }

    /** Writes {@code dir/drift.json} atomically (temp file, then rename) and returns its path. */
    public Path write(Path dir) {
        Path file = dir.resolve(FILE_NAME);
        JsonFiles.write(file, this);
        return file;
    }

    public static DriftReport read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + " does not exist; run `spindle drift` to write it");
        }
        return JsonFiles.read(file, DriftReport.class);
    }
}
