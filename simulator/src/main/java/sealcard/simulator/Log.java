package sealcard.simulator;

/**
 * The launcher's log: one line per event on stdout (the Python side sends it to a file).
 * Never logs APDU contents: commands carry PINs and keys.
 */
final class Log {
    private static final String PREFIX = "sealcard-sim: ";

    private Log() {
    }

    static synchronized void info(String message) {
        System.out.println(PREFIX + message);
        System.out.flush();
    }

    static synchronized void error(String message, Throwable cause) {
        System.out.println(PREFIX + "ERROR " + message + (cause == null ? "" : ": " + cause));
        System.out.flush();
    }
}
