package training.trainer;

/** Tests in other packages set the checkpoint shard size (package-private in {@link Checkpoints}) through this. */
public final class CheckpointShardLimit implements AutoCloseable {
    private final long saved;

    private CheckpointShardLimit(long elements) {
        saved = Checkpoints.shardElements;
        Checkpoints.shardElements = elements;
    }

    /** Shards of at most {@code elements} values until closed. */
    public static CheckpointShardLimit of(long elements) {
        return new CheckpointShardLimit(elements);
    }

    @Override
    public void close() {
        Checkpoints.shardElements = saved;
    }
}
