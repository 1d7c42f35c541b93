package jobs.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;

/**
 * Builds the SparkSession for a Spindle job. Under spark-submit the master and settings come from
 * the submit; run from the CLI without one, a job runs in local mode on every core.
 */
public final class SparkSessions {

    private SparkSessions() {
    }

    /** The session for {@code appName}; {@code master} overrides (null keeps spark-submit's or local[*]). */
    public static SparkSession create(String appName, String master) {
        SparkConf conf = new SparkConf(true).setAppName(appName);
        if (master != null) {
            conf.setMaster(master);
        } else if (!conf.contains("spark.master")) {
            conf.setMaster("local[*]");
        }
        boolean local = conf.get("spark.master").startsWith("local");
        conf.setIfMissing("spark.serializer", "org.apache.spark.serializer.KryoSerializer");
        conf.setIfMissing("spark.kryo.registrationRequired", "false");
        if (local) {
            // Local runs: no web UI port to bind, small shuffles, driver on loopback.
            conf.setIfMissing("spark.ui.enabled", "false");
            conf.setIfMissing("spark.sql.shuffle.partitions", "8");
            conf.setIfMissing("spark.driver.host", "127.0.0.1");
            conf.setIfMissing("spark.driver.bindAddress", "127.0.0.1");
        }
        return SparkSession.builder().config(conf).getOrCreate();
    }
}
