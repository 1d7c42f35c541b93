package analysis.seek;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.filter2.compat.FilterCompat;
import org.apache.parquet.filter2.predicate.FilterApi;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.GroupReadSupport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * One feature's entries in the tables {@code spindle features} writes: its largest cached
 * activation ({@code features.parquet}) and its top examples' contexts ({@code examples.parquet},
 * kind {@code top}): each the window's tokens up to and including the example's position.
 */
public record CachedTopExamples(float max, List<int[]> contexts, List<Float> activations) {

    public static CachedTopExamples read(Path featuresDir, int feature) {
        Path features = featuresDir.resolve("features.parquet");
        Path examples = featuresDir.resolve("examples.parquet");
        if (!Files.isRegularFile(features) || !Files.isRegularFile(examples)) {
            throw new IllegalArgumentException(featuresDir + " has no features.parquet and examples.parquet; pass the output "
                    + "directory of `spindle features` for this dictionary");
        }
        Float max = null;
        Configuration conf = new Configuration();
        conf.set(ReadSupport.PARQUET_READ_SCHEMA, "message features { required int32 feature; required float max; }");
        try (ParquetReader<Group> reader = ParquetReader.builder(new GroupReadSupport(), hadoopPath(features)).withConf(conf)
                .withFilter(FilterCompat.get(FilterApi.eq(FilterApi.intColumn("feature"), feature))).build()) {
            for (Group row = reader.read(); row != null; row = reader.read()) {
                if (row.getInteger("feature", 0) == feature) {
                    max = row.getFloat("max", 0);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + features + ": " + e.getMessage(), e);
        }
        if (max == null) {
            throw new IllegalArgumentException(features + " has no row for feature " + feature
                    + "; pass the feature tables made from this dictionary");
        }
        List<int[]> contexts = new ArrayList<>();
        List<Float> activations = new ArrayList<>();
        Configuration exampleConf = new Configuration();
        exampleConf.set(ReadSupport.PARQUET_READ_SCHEMA, "message examples { required int32 feature; required binary kind (STRING);"
                + " required int32 pos; required float activation; required int32 window_start;"
                + " optional group window_tokens (LIST) { repeated group list { required int32 element; } } }");
        try (ParquetReader<Group> reader = ParquetReader.builder(new GroupReadSupport(), hadoopPath(examples)).withConf(exampleConf)
                .withFilter(FilterCompat.get(FilterApi.eq(FilterApi.intColumn("feature"), feature))).build()) {
            for (Group row = reader.read(); row != null; row = reader.read()) {
                if (row.getInteger("feature", 0) != feature || !row.getString("kind", 0).equals("top")
                        || row.getFieldRepetitionCount("window_tokens") == 0) {
                    continue;
                }
                Group list = row.getGroup("window_tokens", 0);
                int upTo = row.getInteger("pos", 0) - row.getInteger("window_start", 0) + 1;
                int n = Math.min(upTo, list.getFieldRepetitionCount("list"));
                int[] tokens = new int[n];
                for (int i = 0; i < n; i++) {
                    tokens[i] = list.getGroup("list", i).getInteger("element", 0);
                }
                contexts.add(tokens);
                activations.add(row.getFloat("activation", 0));
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + examples + ": " + e.getMessage(), e);
        }
        return new CachedTopExamples(max, contexts, activations);
    }

    private static org.apache.hadoop.fs.Path hadoopPath(Path p) {
        return new org.apache.hadoop.fs.Path(p.toAbsolutePath().toUri());
    }
}
