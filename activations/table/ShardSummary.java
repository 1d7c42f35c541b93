package activations.table;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What one committed activation shard holds: its file name (relative to the cache directory), row
 * count, storage dtype, hooks with widths, per-hook statistics, and the id of the task attempt
 * whose file won the commit. Stored twice, identically: as the shard's stats sidecar and in the
 * shard's own Parquet footer (key {@link #FOOTER_KEY}), so the manifest can always be rebuilt
 * without recomputing anything.
 *
 * @param committed true when this attempt's file is the one on disk; false when another attempt
 *                  committed the same shard first (the statistics are then the winner's, read
 *                  from its footer, so a driver can use any attempt's summary)
 */
@JsonIgnoreProperties(ignoreUnknown = true)
@JsonInclude(JsonInclude.Include.NON_NULL)
public record ShardSummary(String file, long rows, String dtype, List<String> hooks, int[] dims,
                           Map<String, HookStatistics> statistics, String attempt, boolean committed) {

    /** Parquet footer key holding this summary as JSON. */
    public static final String FOOTER_KEY = "spindle.shard.summary";

    static final ObjectMapper JSON = new ObjectMapper();

    public ShardSummary {
        hooks = List.copyOf(hooks);
        dims = dims.clone();
        statistics = new LinkedHashMap<>(statistics);
    }

    ShardSummary withCommitted(boolean value) {
        return new ShardSummary(file, rows, dtype, hooks, dims, statistics, attempt, value);
    }

    String toJson() {
        try {
            return JSON.writeValueAsString(this);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise the summary of shard " + file + ": " + TableFiles.oneLine(e), e);
        }
    }

    static ShardSummary fromJson(String json, String where) {
        try {
            return JSON.readValue(json, ShardSummary.class);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(where + ": malformed shard summary (" + TableFiles.oneLine(e) + ")", e);
        }
    }
}
