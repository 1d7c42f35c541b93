package testing;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;

import java.io.IOException;
import java.net.URI;

/**
 * A real HDFS in the test JVM: one NameNode and one DataNode from Hadoop's own minicluster, on
 * loopback, storing its blocks under a test directory. Paths it hands out are full
 * {@code hdfs://localhost:PORT/...} URIs, so Spark jobs and readers reach it with no extra
 * configuration, exactly as they would reach a cluster's NameNode.
 */
public final class MiniHdfs implements AutoCloseable {

    private final MiniDFSCluster cluster;
    private final FileSystem fs;

    private MiniHdfs(MiniDFSCluster cluster) throws IOException {
        this.cluster = cluster;
        this.fs = cluster.getFileSystem();
    }

    /** Starts the cluster with its storage under {@code baseDir} and waits until it is active. */
    public static MiniHdfs start(java.nio.file.Path baseDir) throws IOException {
        Configuration conf = new Configuration();
        // Every listener on loopback, on a free port: the tests never open a port to the network.
        conf.set("dfs.namenode.rpc-address", "127.0.0.1:0");
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.set("dfs.namenode.https-address", "127.0.0.1:0");
        conf.set("dfs.namenode.secondary.http-address", "127.0.0.1:0");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.set("dfs.datanode.https.address", "127.0.0.1:0");
        conf.setBoolean("dfs.permissions.enabled", false);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, baseDir.toFile())
                .numDataNodes(1).format(true).build();
        cluster.waitActive();
        return new MiniHdfs(cluster);
    }

    /**
     * Runs a cluster in a process of its own until killed, printing its URI: for benchmarks that
     * keep the NameNode and DataNode off the reader's cores, as on a cluster where they are other
     * machines ({@code taskset -c 1 java ... testing.MiniHdfs DIR}).
     */
    public static void main(String[] args) throws Exception {
        MiniHdfs hdfs = start(java.nio.file.Path.of(args[0]));
        System.out.println("hdfs " + hdfs.uri(""));
        System.out.flush();
        Thread.sleep(Long.MAX_VALUE);
    }

    /** {@code hdfs://localhost:PORT/relative}. */
    public String uri(String relative) {
        URI root = cluster.getURI();
        return root.toString().replaceAll("/$", "") + "/" + relative.replaceAll("^/", "");
    }

    public FileSystem fileSystem() {
        return fs;
    }

    /** Copies a local file or directory into HDFS at {@code relative}; returns its URI. */
    public String copyIn(java.nio.file.Path local, String relative) throws IOException {
        fs.copyFromLocalFile(false, true, new Path(local.toUri()), new Path(uri(relative)));
        return uri(relative);
    }

    @Override
    public void close() throws IOException {
        cluster.shutdown(true);
    }
}
