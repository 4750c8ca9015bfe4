package sealcard.simulator;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The control channel: a Unix domain socket; a client writes one command line and reads one
 * answer line ("ok", "ok {json}" or "error MESSAGE"), then the connection closes.
 *
 * Commands: {@code status}, {@code reset-blank N}, {@code tear N [ABSENT_MS]}, {@code stop}.
 * The socket file is readable and writable by its owner only.
 */
final class ControlServer {
    private static final int MAX_LINE = 256;
    private static final long DEFAULT_ABSENT_MS = 1000;
    private static final long MAX_ABSENT_MS = 60_000;

    private final Path path;
    private final SimLauncher launcher;
    private ServerSocketChannel server;
    private volatile boolean running = true;

    ControlServer(Path path, SimLauncher launcher) {
        this.path = path;
        this.launcher = launcher;
    }

    void open() throws IOException {
        Files.deleteIfExists(path);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
        Files.setPosixFilePermissions(path, PosixFilePermissions.fromString("rw-------"));
    }

    /** Answers commands until {@code stop} or {@link #close}. */
    void serve() {
        while (running) {
            try (SocketChannel client = server.accept()) {
                handle(client);
            } catch (IOException e) {
                if (running) {
                    Log.error("control channel", e);
                }
            }
        }
    }

    void close() {
        running = false;
        try {
            if (server != null) {
                server.close();
            }
            Files.deleteIfExists(path);
        } catch (IOException e) {
            // best effort at shutdown
        }
    }

    private void handle(SocketChannel client) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(
                Channels.newInputStream(client), StandardCharsets.US_ASCII), MAX_LINE);
        String line = in.readLine();
        String answer = line == null ? "error empty command" : answer(line.trim());
        OutputStream out = Channels.newOutputStream(client);
        out.write((answer + "\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
        if ("stop".equals(line == null ? "" : line.trim())) {
            running = false;
        }
    }

    private String answer(String line) {
        String[] words = line.split("\\s+");
        try {
            switch (words[0]) {
                case "status":
                    return "ok " + launcher.statusJson();
                case "reset-blank":
                    expectArgs(words, 1, 1);
                    launcher.card(cardIndex(words[1])).replaceWithBlank();
                    Log.info("card " + words[1] + ": replaced by a blank card");
                    return "ok";
                case "tear":
                    expectArgs(words, 1, 2);
                    long absent = words.length > 2 ? absentMillis(words[2]) : DEFAULT_ABSENT_MS;
                    launcher.link(cardIndex(words[1])).tear(absent);
                    Log.info("card " + words[1] + ": torn out for " + absent + " ms");
                    return "ok";
                case "stop":
                    return "ok";
                default:
                    return "error unknown command " + words[0]
                            + " (status | reset-blank N | tear N [ABSENT_MS] | stop)";
            }
        } catch (IllegalArgumentException | IllegalStateException e) {
            return "error " + e.getMessage();
        }
    }

    private static void expectArgs(String[] words, int min, int max) {
        int n = words.length - 1;
        if (n < min || n > max) {
            throw new IllegalArgumentException(words[0] + " takes " + min
                    + (max > min ? ".." + max : "") + " argument(s)");
        }
    }

    private int cardIndex(String word) {
        int index;
        try {
            index = Integer.parseInt(word);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("card number wanted, got " + word);
        }
        if (index < 0 || index >= launcher.cardCount()) {
            throw new IllegalArgumentException("no card " + index + " (cards are 0.."
                    + (launcher.cardCount() - 1) + ")");
        }
        return index;
    }

    private static long absentMillis(String word) {
        long ms;
        try {
            ms = Long.parseLong(word);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("milliseconds wanted, got " + word);
        }
        if (ms < 0 || ms > MAX_ABSENT_MS) {
            throw new IllegalArgumentException("absence must be 0.." + MAX_ABSENT_MS + " ms");
        }
        return ms;
    }
}
