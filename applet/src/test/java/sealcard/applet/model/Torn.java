package sealcard.applet.model;

/**
 * Power was cut (a tear): thrown by the memory model instead of a persistent write. An
 * {@link Error}, so the applet's {@code catch (Exception)} cannot run clean-up code that a
 * card without power would never run.
 */
public final class Torn extends Error {
    private static final long serialVersionUID = 1L;

    Torn(String message) {
        super(message, null, false, false);
    }
}
