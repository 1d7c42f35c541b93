package jobs.spark;

import org.apache.spark.sql.SparkSession;

/** The local[2] session a Spark test class shares (create in @BeforeAll, stop in @AfterAll). */
public final class SparkTestSession {

    private SparkTestSession() {
    }

    public static SparkSession start() {
        return SparkSessions.create("spindle-test", "local[2]");
    }
}
