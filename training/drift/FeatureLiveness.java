package training.drift;

import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.hadoop.api.ReadSupport;
import org.apache.parquet.hadoop.example.GroupReadSupport;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Which features fired, from the {@code features.parquet} table {@code spindle features} writes
 * ({@link training.features.FeatureTables}): a feature is live when its {@code firings} is above 0.
 */
public final class FeatureLiveness {

    public static final String TABLE = "features.parquet";

    private FeatureLiveness() {
    }

    /** Live flags [d_sae] of the features directory {@code featuresDir}, checked against the dictionary's width. */
    public static boolean[] read(Path featuresDir, int dSae) {
        Path table = featuresDir.resolve(TABLE);
        if (!Files.isRegularFile(table)) {
            throw new IllegalArgumentException(featuresDir + " has no " + TABLE
                    + "; pass the output directory of `spindle features` for this run's dictionary");
        }
        Configuration conf = new Configuration();
        // Read only the two columns needed, not the logit lists.
        conf.set(ReadSupport.PARQUET_READ_SCHEMA, "message features { required int32 feature; required int64 firings; }");
        boolean[] live = new boolean[dSae];
        boolean[] seen = new boolean[dSae];
        int rows = 0;
        try (ParquetReader<Group> reader = ParquetReader.builder(new GroupReadSupport(),
                new org.apache.hadoop.fs.Path(table.toAbsolutePath().toUri())).withConf(conf).build()) {
            for (Group row = reader.read(); row != null; row = reader.read()) {
                int feature = row.getInteger("feature", 0);
                if (feature < 0 || feature >= dSae || seen[feature]) {
                    throw new IllegalArgumentException(table + " has feature " + feature + (feature >= 0 && feature < dSae
                            ? " twice" : " but the dictionary has d_sae " + dSae) + "; pass the feature tables made from this dictionary");
                }
                seen[feature] = true;
                live[feature] = row.getLong("firings", 0) > 0;
                rows++;
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + table + ": " + e.getMessage(), e);
        }
        if (rows != dSae) {
            throw new IllegalArgumentException(table + " has " + rows + " features but the dictionary has d_sae " + dSae
                    + "; pass the feature tables made from this dictionary");
        }
        return live;
    }
}
