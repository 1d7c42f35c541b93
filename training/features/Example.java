package training.features;

/**
 * One example of a feature firing: a top-k example (bin -1) or a sample of a quantile bin, its
 * rank within its list (0 = highest activation), where it is and the token there.
 */
public record Example(int feature, Kind kind, int bin, int rank, long seqId, int pos, int tokenId, float activation) {

    public enum Kind { TOP, QUANTILE }

    public Example withRank(int value) {
        return new Example(feature, kind, bin, value, seqId, pos, tokenId, activation);
    }
}
