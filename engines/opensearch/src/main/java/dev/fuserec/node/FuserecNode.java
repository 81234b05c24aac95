package dev.fuserec.node;

import org.opensearch.Version;
import org.opensearch.common.settings.Settings;
import org.opensearch.core.common.transport.TransportAddress;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;
import org.opensearch.plugins.PluginInfo;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A single OpenSearch node with the distribution's modules loaded as classpath plugins.
 *
 * <p>Usage: {@code FuserecNode --home DIR [--http-port N] [--transport-port N] [--cluster-name NAME]
 * [--node-name NAME] [--exit-on-stdin-close]}. Data goes to DIR/data, the log to DIR/logs/opensearch.log.
 * Binds to 127.0.0.1 only. When the node is started, prints one JSON line to stdout:
 * {@code {"url": "http://127.0.0.1:PORT", "pid": N, "version": "3.9.0", ...}}. SIGTERM closes the node
 * (flushing its indices) and exits 0. With {@code --exit-on-stdin-close} the node also stops when its
 * standard input reaches end of file, so that it cannot outlive a parent that holds the pipe.
 *
 * <p>This class must not touch OpenSearch or log4j classes before {@link #main} has set the log4j
 * system properties: the node class lives in the nested {@link ClasspathNode}, initialised lazily.
 */
public final class FuserecNode {

    /**
     * The modules a distribution would load from modules/, here taken from the classpath:
     * module name (as a distribution calls it) and plugin class.
     */
    private static final Map<String, String> PLUGINS = orderedMap(
        "transport-netty4", "org.opensearch.transport.Netty4ModulePlugin",
        "analysis-common", "org.opensearch.analysis.common.CommonAnalysisModulePlugin",
        "lang-painless", "org.opensearch.painless.PainlessModulePlugin",
        "mapper-extras", "org.opensearch.index.mapper.MapperExtrasModulePlugin",
        "reindex", "org.opensearch.index.reindex.ReindexModulePlugin",
        "parent-join", "org.opensearch.join.ParentJoinModulePlugin",
        "rank-eval", "org.opensearch.index.rankeval.RankEvalModulePlugin",
        "lang-mustache", "org.opensearch.script.mustache.MustacheModulePlugin"
    );

    private FuserecNode() {}

    /** Node's protected constructor takes plugin descriptors; the test framework's MockNode does the same. */
    static final class ClasspathNode extends Node {
        ClasspathNode(Environment environment, Collection<PluginInfo> plugins) {
            super(environment, plugins, false);
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opts = parse(args);
        String homeArg = opts.get("home");
        if (homeArg == null) {
            System.err.println("usage: FuserecNode --home DIR [--http-port N] [--transport-port N] "
                + "[--cluster-name NAME] [--node-name NAME] [--exit-on-stdin-close]");
            System.exit(2);
        }
        Path home = Paths.get(homeArg).toAbsolutePath().normalize();
        Path config = home.resolve("config");
        Path logs = home.resolve("logs");
        Files.createDirectories(config);
        Files.createDirectories(logs);
        Files.createDirectories(home.resolve("data"));
        // log4j reads these when it first initialises, which is after this point.
        System.setProperty("fuserec.node.log", logs.resolve("opensearch.log").toString());
        if (System.getProperty("log4j2.configurationFile") == null) {
            System.setProperty("log4j2.configurationFile", "fuserec-node-log4j2.properties");
        }
        System.setProperty("log4j.shutdownHookEnabled", "false");
        System.setProperty("log4j2.disable.jmx", "true");
        // java.util.logging (Lucene uses it) into log4j too, unless the command line chose otherwise
        if (System.getProperty("java.util.logging.manager") == null) {
            System.setProperty("java.util.logging.manager", "org.apache.logging.log4j.jul.LogManager");
        }

        String nodeName = opts.getOrDefault("node-name", "fuserec-node");
        Settings settings = Settings.builder()
            .put("cluster.name", opts.getOrDefault("cluster-name", "fuserec"))
            .put("node.name", nodeName)
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", logs.toString())
            .put("discovery.type", "single-node")
            .put("network.host", "127.0.0.1")
            .put("http.port", opts.getOrDefault("http-port", "0"))
            .put("transport.port", opts.getOrDefault("transport-port", "0"))
            .put("http.type", "netty4")
            .put("transport.type", "netty4")
            // a shared test machine's disk must not turn indices read-only under the tests' feet
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();

        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        Node node;
        try {
            Environment environment = InternalSettingsPreparer.prepareEnvironment(
                settings, Map.of(), config, () -> nodeName);
            node = new ClasspathNode(environment, pluginInfos()).start();
        } catch (Throwable e) {
            System.err.println("fuserec-node: OpenSearch failed to start: " + e);
            e.printStackTrace(System.err);
            System.err.flush();
            Runtime.getRuntime().halt(1);
            return;
        }

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                System.err.println("fuserec-node: error while closing: " + e);
            } finally {
                stopped.countDown();
                org.apache.logging.log4j.LogManager.shutdown();
            }
        }, "fuserec-node-shutdown"));

        TransportAddress http = node.injector().getInstance(HttpServerTransport.class).boundAddress().publishAddress();
        out.println("{\"url\": \"http://" + http.getAddress() + ":" + http.getPort() + "\", "
            + "\"pid\": " + ProcessHandle.current().pid() + ", "
            + "\"version\": \"" + Version.CURRENT + "\", "
            + "\"lucene\": \"" + Version.CURRENT.luceneVersion + "\", "
            + "\"java\": \"" + Runtime.version() + "\", "
            + "\"home\": \"" + home.toString().replace("\\", "\\\\").replace("\"", "\\\"") + "\"}");
        out.flush();

        if (opts.containsKey("exit-on-stdin-close")) {
            Thread watcher = new Thread(() -> {
                try (InputStream in = System.in) {
                    while (in.read() != -1) {
                        // drain: only end of file matters
                    }
                } catch (IOException ignored) {
                    // a broken pipe is an end of file too
                }
                System.exit(0);
            }, "fuserec-node-stdin");
            watcher.setDaemon(true);
            watcher.start();
        }
        stopped.await();
    }

    private static List<PluginInfo> pluginInfos() throws ClassNotFoundException {
        List<PluginInfo> infos = new ArrayList<>();
        for (Map.Entry<String, String> module : PLUGINS.entrySet()) {
            Class<? extends Plugin> cls = Class.forName(module.getValue()).asSubclass(Plugin.class);
            infos.add(new PluginInfo(module.getKey(), "classpath module " + cls.getName(), Version.CURRENT.toString(),
                Version.CURRENT, Integer.toString(Runtime.version().feature()), cls.getName(), null, List.of(), false));
        }
        return infos;
    }

    private static Map<String, String> orderedMap(String... pairs) {
        Map<String, String> map = new LinkedHashMap<>();
        for (int i = 0; i < pairs.length; i += 2) {
            map.put(pairs[i], pairs[i + 1]);
        }
        return map;
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (!arg.startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument: " + arg);
            }
            String key = arg.substring(2);
            if (key.equals("exit-on-stdin-close")) {
                opts.put(key, "true");
            } else if (i + 1 < args.length) {
                opts.put(key, args[++i]);
            } else {
                throw new IllegalArgumentException("missing value for " + arg);
            }
        }
        return opts;
    }
}
