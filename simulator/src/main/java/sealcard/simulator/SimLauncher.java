package sealcard.simulator;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Hosts N simulated sealcard cards in one JVM, each behind its own vpcd reader slot of pcscd.
 *
 * Start: secure jCardSim's randomness (and check it), install the applet on every card, open the
 * control socket, then connect every card to vpcd (reconnecting whenever pcscd restarts). Stop:
 * the {@code stop} control command or SIGTERM.
 */
public final class SimLauncher {
    private static final int EXIT_USAGE = 2;
    private static final int EXIT_FAILURE = 1;

    private final LauncherOptions options;
    private final List<SimulatedCard> cards = new ArrayList<>();
    private final List<VpcdLink> links = new ArrayList<>();
    private final ControlServer control;

    private SimLauncher(LauncherOptions options) {
        this.options = options;
        this.control = new ControlServer(options.control, this);
    }

    public static void main(String[] args) {
        LauncherOptions options;
        try {
            options = LauncherOptions.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("sealcard-sim: " + e.getMessage());
            System.err.println(LauncherOptions.USAGE);
            System.exit(EXIT_USAGE);
            return;
        }
        if (options.help) {
            System.out.println(LauncherOptions.USAGE);
            return;
        }
        try {
            new SimLauncher(options).run();
        } catch (IOException | RuntimeException e) {
            Log.error("cannot start", e);
            Throwable cause = e.getCause();
            while (cause != null) {
                Log.error("  caused by", cause);
                cause = cause.getCause();
            }
            System.exit(EXIT_FAILURE);
        }
        System.exit(0);
    }

    private void run() throws IOException {
        RandomnessCheck.secureAndVerify();
        KeyStorageCheck.verify();
        AppletSpec spec = new AppletSpec(options.appletClass, options.appletAid, options.packageAid,
                options.installParams, options.appletClasspath);
        for (int i = 0; i < options.cards; i++) {
            SimulatedCard card = new SimulatedCard(i, spec, options.atr, options.protocol, options.timing);
            cards.add(card);
            links.add(new VpcdLink(card, options.host, options.portBase + i));
        }
        Log.info(options.cards + " card(s) with " + options.appletClass + " (AID "
                + Hex.encode(options.appletAid) + ") installed");
        control.open();
        Runtime.getRuntime().addShutdownHook(new Thread(this::shutdown, "sealcard-sim-shutdown"));
        for (VpcdLink link : links) {
            Thread t = new Thread(link, "vpcd-card-" + link.port);
            t.setDaemon(true);
            t.start();
        }
        Log.info("control socket " + options.control);
        control.serve();
        Log.info("stopping");
    }

    private void shutdown() {
        for (VpcdLink link : links) {
            link.stop();
        }
        control.close();
    }

    int cardCount() {
        return cards.size();
    }

    SimulatedCard card(int index) {
        return cards.get(index);
    }

    VpcdLink link(int index) {
        return links.get(index);
    }

    String statusJson() {
        StringBuilder sb = new StringBuilder();
        sb.append("{\"pid\":").append(ProcessHandle.current().pid())
                .append(",\"applet_class\":\"").append(options.appletClass).append('"')
                .append(",\"applet_aid\":\"").append(Hex.encode(options.appletAid)).append('"')
                .append(",\"package_aid\":\"").append(Hex.encode(options.packageAid)).append('"')
                .append(",\"atr\":\"").append(Hex.encode(options.atr)).append('"')
                .append(",\"host\":\"").append(options.host).append('"')
                .append(",\"cards\":[");
        for (int i = 0; i < cards.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            VpcdLink link = links.get(i);
            sb.append(cards.get(i).statusJson(link.port, link.isConnected()));
        }
        return sb.append("]}").toString();
    }
}
