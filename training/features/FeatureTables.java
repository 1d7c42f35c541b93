package training.features;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.hadoop.util.HadoopOutputFile;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.MessageTypeParser;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Writes {@code features.parquet} (one row per feature) and {@code examples.parquet} (one row per
 * example) with standard 3-level LIST columns, which Spark SQL, DuckDB and pandas/pyarrow read
 * directly, and {@code SCHEMA.md} describing them.
 */
public final class FeatureTables {

    public static final MessageType FEATURES = MessageTypeParser.parseMessageType("""
            message features {
              required int32 feature;
              required int64 firings;
              required int64 tokens;
              required double frequency;
              required float max;
              required double mean;
              required double histogram_range;
              optional group histogram (LIST) { repeated group list { required int64 element; } }
              optional group top_logit_tokens (LIST) { repeated group list { required int32 element; } }
              optional group top_logit_pieces (LIST) { repeated group list { required binary element (STRING); } }
              optional group top_logit_values (LIST) { repeated group list { required float element; } }
              optional group bottom_logit_tokens (LIST) { repeated group list { required int32 element; } }
              optional group bottom_logit_pieces (LIST) { repeated group list { required binary element (STRING); } }
              optional group bottom_logit_values (LIST) { repeated group list { required float element; } }
            }""");

    public static final MessageType EXAMPLES = MessageTypeParser.parseMessageType("""
            message examples {
              required int32 feature;
              required binary kind (STRING);
              required int32 bin;
              required int32 rank;
              required int64 seq_id;
              required int32 pos;
              required int32 token_id;
              required float activation;
              required int32 window_start;
              optional group window_tokens (LIST) { repeated group list { required int32 element; } }
              optional group window_pieces (LIST) { repeated group list { required binary element (STRING); } }
              optional group window_activations (LIST) { repeated group list { required float element; } }
            }""");

    static final String SCHEMA_MD = """
            # Feature tables

            Written by `spindle features`. Plain Parquet (3-level LIST columns): read with Spark SQL
            (`spark.read.parquet("features.parquet")`), DuckDB (`SELECT * FROM 'examples.parquet'`) or
            pandas (`pd.read_parquet("examples.parquet")`).

            ## features.parquet: one row per feature

            | column | type | meaning |
            |---|---|---|
            | feature | INT | feature index |
            | firings | BIGINT | tokens on which the feature was > 0 |
            | tokens | BIGINT | tokens in the activation cache |
            | frequency | DOUBLE | firings / tokens |
            | max | FLOAT | largest activation |
            | mean | DOUBLE | mean activation over the tokens where it fired |
            | histogram_range | DOUBLE | R: the max rounded up to a power of two (0 if the feature never fired) |
            | histogram | ARRAY<BIGINT> | firing counts in 40 equal-width bins over [0, R) |
            | top_logit_tokens, top_logit_pieces, top_logit_values | ARRAY | the 10 output tokens the decoder direction promotes most, `W_dec[f] * gain @ W_U^T` (gain: final norm); NULL when the hook is not residual-stream width |
            | bottom_logit_tokens, bottom_logit_pieces, bottom_logit_values | ARRAY | the 10 it suppresses most (lowest first); NULL likewise |

            ## examples.parquet: one row per example

            | column | type | meaning |
            |---|---|---|
            | feature | INT | feature index |
            | kind | STRING | `top` (top-k by activation) or `quantile` (random sample of a quantile bin) |
            | bin | INT | quantile bin: 10 equal-width bins over [0, R), 0 lowest; -1 for `top` |
            | rank | INT | 0 = highest activation within its list (top-k, or the bin) |
            | seq_id, pos | BIGINT, INT | where: token-table sequence and position |
            | token_id | INT | the token there |
            | activation | FLOAT | the feature's activation there |
            | window_start | INT | position of the first window token |
            | window_tokens | ARRAY<INT> | token ids of positions window_start .. pos + context (clipped to the sequence) |
            | window_pieces | ARRAY<STRING> | each token's text piece (the tokenizer's piece, decoded for display) |
            | window_activations | ARRAY<FLOAT> | the feature's activation on every window token (0 where the cache has no row, e.g. a skipped BOS) |

            Top-k ties are broken by smaller (seq_id, pos) first, so results do not depend on partitioning.
            """;

    private FeatureTables() {
    }

    public static void write(Path dir, List<FeatureReport> features) {
        Configuration conf = new Configuration();
        try {
            Files.writeString(dir.resolve("SCHEMA.md"), SCHEMA_MD, StandardCharsets.UTF_8);
            SimpleGroupFactory featureRows = new SimpleGroupFactory(FEATURES);
            try (ParquetWriter<Group> out = writer(dir.resolve("features.parquet"), FEATURES, conf)) {
                for (FeatureReport f : features) {
                    Group g = featureRows.newGroup()
                            .append("feature", f.feature()).append("firings", f.firings()).append("tokens", f.tokens())
                            .append("frequency", f.frequency()).append("max", f.max()).append("mean", f.mean())
                            .append("histogram_range", f.histogramRange());
                    Group hist = g.addGroup("histogram");
                    for (long c : f.histogram()) {
                        hist.addGroup("list").append("element", c);
                    }
                    if (f.logits() != null) {
                        ints(g.addGroup("top_logit_tokens"), f.logits().topTokens());
                        strings(g.addGroup("top_logit_pieces"), f.topLogitPieces());
                        floats(g.addGroup("top_logit_values"), f.logits().topValues());
                        ints(g.addGroup("bottom_logit_tokens"), f.logits().bottomTokens());
                        strings(g.addGroup("bottom_logit_pieces"), f.bottomLogitPieces());
                        floats(g.addGroup("bottom_logit_values"), f.logits().bottomValues());
                    }
                    out.write(g);
                }
            }
            SimpleGroupFactory exampleRows = new SimpleGroupFactory(EXAMPLES);
            try (ParquetWriter<Group> out = writer(dir.resolve("examples.parquet"), EXAMPLES, conf)) {
                for (FeatureReport f : features) {
                    for (FeatureReport.WindowedExample w : f.examples()) {
                        Example e = w.example();
                        Group g = exampleRows.newGroup()
                                .append("feature", e.feature()).append("kind", e.kind().name().toLowerCase(java.util.Locale.ROOT))
                                .append("bin", e.bin()).append("rank", e.rank()).append("seq_id", e.seqId())
                                .append("pos", e.pos()).append("token_id", e.tokenId()).append("activation", e.activation())
                                .append("window_start", w.windowStart());
                        ints(g.addGroup("window_tokens"), w.tokens());
                        strings(g.addGroup("window_pieces"), w.pieces());
                        floats(g.addGroup("window_activations"), w.activations());
                        out.write(g);
                    }
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the feature tables in " + dir + ": " + e.getMessage(), e);
        }
    }

    private static ParquetWriter<Group> writer(Path file, MessageType schema, Configuration conf) throws IOException {
        return ExampleParquetWriter.builder(HadoopOutputFile.fromPath(new org.apache.hadoop.fs.Path(file.toUri()), conf))
                .withType(schema).withConf(conf).withCompressionCodec(CompressionCodecName.SNAPPY).build();
    }

    private static void ints(Group list, int[] values) {
        for (int v : values) {
            list.addGroup("list").append("element", v);
        }
    }

    private static void floats(Group list, float[] values) {
        for (float v : values) {
            list.addGroup("list").append("element", v);
        }
    }

    private static void strings(Group list, String[] values) {
        for (String v : values) {
            list.addGroup("list").append("element", v);
        }
    }
}
