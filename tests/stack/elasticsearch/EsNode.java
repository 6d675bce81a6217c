import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.util.concurrent.CountDownLatch;

import org.codelibs.elasticsearch.runner.ElasticsearchClusterRunner;

/**
 * One embedded Elasticsearch 7.10.2 node for lc_trace's tests (started by tests/stack/elasticsearch.py).
 *
 * <pre>java -cp 'lib/*:classes' EsNode HTTP_PORT TRANSPORT_PORT BASE_DIR</pre>
 *
 * Binds HTTP and transport to 127.0.0.1 only, keeps config, data and logs under BASE_DIR, prints
 * {@code EsNode ready http://127.0.0.1:PORT} once the node has started, and closes the node cleanly on
 * SIGTERM/SIGINT or when its stdin closes (so it dies with the Python process that started it).
 */
public final class EsNode {

    private EsNode() {
    }

    public static void main(final String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: EsNode HTTP_PORT TRANSPORT_PORT BASE_DIR");
            System.exit(2);
        }
        final String httpPort = String.valueOf(Integer.parseInt(args[0]));
        final String transportPort = String.valueOf(Integer.parseInt(args[1]));
        final String baseDir = args[2];
        // Elasticsearch routes System.out through log4j once it is configured, and log4j may be gone by the
        // time the shutdown hook runs: keep the real stdout for our own lines.
        final PrintStream out = System.out;

        final ElasticsearchClusterRunner runner = new ElasticsearchClusterRunner();
        final CountDownLatch closed = new CountDownLatch(1);
        final Thread hook = new Thread(() -> {
            closeQuietly(runner, out);
            closed.countDown();
        }, "es-node-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);

        // The runner would probe ports 9201..9299 on localhost for a free one; http.port is fixed below (and the
        // base port makes the runner's own "HTTP Port:" line tell the truth).
        runner.setMaxHttpPort(-1);
        try {
            runner.onBuild((index, settings) -> {
                settings.put("network.host", "127.0.0.1");
                settings.put("http.port", httpPort);
                settings.put("transport.port", transportPort);
                settings.put("discovery.type", "single-node");
                // A full CI disk must not turn the test index read-only or leave its shard unassigned.
                settings.put("cluster.routing.allocation.disk.threshold_enabled", false);
            }).build(ElasticsearchClusterRunner.newConfigs()
                    .basePath(baseDir)
                    .numOfNode(1)
                    .baseHttpPort(Integer.parseInt(httpPort) - 1)
                    .clusterName("lc-trace-test")
                    .printOnFailure());
        } catch (final RuntimeException e) {
            // Half-started nodes leave non-daemon threads behind: exit rather than hang.
            e.printStackTrace(out);
            out.println("EsNode failed to start: " + e);
            out.flush();
            System.exit(1);
        }

        out.println("EsNode ready http://127.0.0.1:" + httpPort);
        out.flush();

        final Thread stdinWatch = new Thread(() -> {
            try (InputStream in = System.in) {
                final byte[] buffer = new byte[256];
                while (in.read(buffer) >= 0) {
                    // Nothing to read; we only wait for EOF.
                }
            } catch (final IOException ignored) {
                // A broken stdin means the parent is gone, same as EOF.
            }
            out.println("EsNode stdin closed, stopping");
            out.flush();
            System.exit(0); // runs the shutdown hook, which closes the node
        }, "es-node-stdin");
        stdinWatch.setDaemon(true);
        stdinWatch.start();

        closed.await();
    }

    private static void closeQuietly(final ElasticsearchClusterRunner runner, final PrintStream out) {
        try {
            if (!runner.isClosed()) {
                runner.close();
            }
            out.println("EsNode stopped");
            out.flush();
        } catch (final IOException | RuntimeException e) {
            out.println("EsNode: closing the node failed: " + e);
            out.flush();
        }
    }
}
