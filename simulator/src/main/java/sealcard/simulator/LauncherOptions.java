package sealcard.simulator;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** Command-line options of {@link SimLauncher}, with the sealcard values as defaults. */
final class LauncherOptions {
    static final String DEFAULT_APPLET_CLASS = "sealcard.applet.SealcardApplet";
    static final String DEFAULT_APPLET_AID = "F05345414C4341524401";
    static final String DEFAULT_PACKAGE_AID = "F05345414C43415244";
    /** vpcd's default port (0x8C7B); card i connects to portBase + i. */
    static final int DEFAULT_PORT_BASE = 0x8C7B;
    static final String DEFAULT_HOST = "127.0.0.1";
    /** jCardSim's default ATR (a JCOP 3.1 card's historical bytes, T=1). */
    static final String DEFAULT_ATR = "3BFA1800008131FE454A434F5033315632333298";
    static final String DEFAULT_PROTOCOL = "T=1";
    static final int MAX_CARDS = 16;
    private static final int MAX_PORT = 0xFFFF;
    private static final int MIN_AID_LENGTH = 5;
    private static final int MAX_AID_LENGTH = 16;

    static final String USAGE = String.join("\n",
            "usage: java -jar sealcard-sim.jar --control SOCKET [options]",
            "",
            "Hosts N simulated JavaCards (jCardSim) in one JVM; each connects to vpcd",
            "(the virtual PC/SC reader driver) as a TCP client on HOST:PORT_BASE+i.",
            "",
            "  --cards N              number of cards (1.." + MAX_CARDS + ", default 1)",
            "  --control PATH         Unix socket for control commands (required):",
            "                         status | reset-blank N | tear N [ABSENT_MS] | stop",
            "  --host H               vpcd host (default " + DEFAULT_HOST + ")",
            "  --port-base P          port of card 0 (default " + DEFAULT_PORT_BASE + " = 0x8C7B)",
            "  --applet-class C       applet class (default " + DEFAULT_APPLET_CLASS + ")",
            "  --applet-aid HEX       applet instance AID (default " + DEFAULT_APPLET_AID + ")",
            "  --package-aid HEX      package AID, reported only",
            "                         (default " + DEFAULT_PACKAGE_AID + ")",
            "  --applet-classpath P   extra jars/directories holding the applet, ':'-separated",
            "  --install-params HEX   application-specific install parameters (default none)",
            "  --atr HEX              answer to reset (default jCardSim's",
            "                         " + DEFAULT_ATR + ")",
            "  --protocol P           protocol the applet sees, T=0 or T=1 (default T=1)",
            "  --timing NAME          how long commands take: " + CardTiming.NAMES
                    + " (default none: as fast as jCardSim;",
            "                         jcop4: NXP JCOP 4 J3R180, from JCAlgTest's timings)",
            "  --help                 this text");

    int cards = 1;
    Path control;
    String host = DEFAULT_HOST;
    int portBase = DEFAULT_PORT_BASE;
    String appletClass = DEFAULT_APPLET_CLASS;
    byte[] appletAid = Hex.decode(DEFAULT_APPLET_AID);
    byte[] packageAid = Hex.decode(DEFAULT_PACKAGE_AID);
    List<Path> appletClasspath = Collections.emptyList();
    byte[] installParams = new byte[0];
    byte[] atr = Hex.decode(DEFAULT_ATR);
    String protocol = DEFAULT_PROTOCOL;
    String timing = CardTiming.NONE;
    boolean help;

    private LauncherOptions() {
    }

    static LauncherOptions parse(String[] args) {
        LauncherOptions o = new LauncherOptions();
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if ("--help".equals(name) || "-h".equals(name)) {
                o.help = true;
                continue;
            }
            if (i + 1 >= args.length) {
                throw new IllegalArgumentException("missing value after " + name);
            }
            String value = args[++i];
            switch (name) {
                case "--cards":
                    o.cards = parseInt(name, value, 1, MAX_CARDS);
                    break;
                case "--control":
                    o.control = Path.of(value);
                    break;
                case "--host":
                    o.host = value;
                    break;
                case "--port-base":
                    o.portBase = parseInt(name, value, 1, MAX_PORT);
                    break;
                case "--applet-class":
                    o.appletClass = value;
                    break;
                case "--applet-aid":
                    o.appletAid = parseAid(name, value);
                    break;
                case "--package-aid":
                    o.packageAid = parseAid(name, value);
                    break;
                case "--applet-classpath":
                    o.appletClasspath = parsePaths(value);
                    break;
                case "--install-params":
                    o.installParams = Hex.decode(value);
                    break;
                case "--atr":
                    o.atr = Hex.decode(value);
                    break;
                case "--protocol":
                    o.protocol = value;
                    break;
                case "--timing":
                    CardTiming.named(value, 0);  // refuse an unknown name here, not per card
                    o.timing = value;
                    break;
                default:
                    throw new IllegalArgumentException("unknown option " + name);
            }
        }
        if (!o.help && o.control == null) {
            throw new IllegalArgumentException("--control PATH is required");
        }
        if (o.portBase + o.cards - 1 > MAX_PORT) {
            throw new IllegalArgumentException("ports run past " + MAX_PORT);
        }
        return o;
    }

    private static int parseInt(String name, String value, int min, int max) {
        int v;
        try {
            v = Integer.decode(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " wants a number, got " + value);
        }
        if (v < min || v > max) {
            throw new IllegalArgumentException(name + " must be in " + min + ".." + max);
        }
        return v;
    }

    private static byte[] parseAid(String name, String value) {
        byte[] aid = Hex.decode(value);
        if (aid.length < MIN_AID_LENGTH || aid.length > MAX_AID_LENGTH) {
            throw new IllegalArgumentException(name + " must be 5..16 bytes");
        }
        return aid;
    }

    private static List<Path> parsePaths(String value) {
        List<Path> paths = new ArrayList<>();
        for (String part : value.split(":")) {
            if (!part.isEmpty()) {
                paths.add(Path.of(part));
            }
        }
        return paths;
    }
}
