package sealcard.applet.model;

import com.licel.jcardsim.base.Simulator;
import com.licel.jcardsim.base.SimulatorRuntime;
import java.nio.file.Path;
import java.util.Arrays;
import javacard.framework.AID;
import javacard.framework.Applet;

/**
 * One simulated card running the instrumented applet over the memory model: APDUs in,
 * answers out, power cycles that do what a card's runtime does at power-up (roll back an
 * open transaction, clear RAM), and a view of the applet's persistent state.
 */
public final class ModelCard {

    public static final byte[] APPLET_AID = {
        (byte) 0xF0, 0x53, 0x45, 0x41, 0x4C, 0x43, 0x41, 0x52, 0x44, 0x01
    };

    /** An answer: data and status word. */
    public record Response(byte[] data, int sw) {
        public int sw1() {
            return (sw >> 8) & 0xFF;
        }

        @Override
        public String toString() {
            return String.format("%04X (%d bytes)", sw, data.length);
        }
    }

    /** jCardSim's runtime, opened up so the harness reaches the applet instance. */
    private static final class Runtime extends SimulatorRuntime {
        Applet applet(AID aid) {
            return getApplet(aid);
        }
    }

    private static Class<? extends Applet> appletClass;

    private final Runtime runtime = new Runtime();
    private final Simulator simulator = new Simulator(runtime);
    private final AID aid = new AID(APPLET_AID, (short) 0, (byte) APPLET_AID.length);
    private final Object applet;

    /** The instrumented applet class, loaded once per JVM from {@code appletClasses}. */
    @SuppressWarnings("unchecked")
    public static synchronized Class<? extends Applet> appletClass(Path appletClasses) {
        if (appletClass == null) {
            ModelClassLoader loader = new ModelClassLoader(appletClasses,
                    ModelCard.class.getClassLoader());
            try {
                appletClass = (Class<? extends Applet>) loader.loadClass(
                        "sealcard.applet.SealcardApplet");
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException("applet classes not found in " + appletClasses,
                        e);
            }
        }
        return appletClass;
    }

    /** A fresh card (state BLANK) with the instrumented applet installed, T=1. */
    public ModelCard(Path appletClasses) {
        simulator.changeProtocol("T=1");
        simulator.installApplet(aid, appletClass(appletClasses));
        applet = runtime.applet(aid);
    }

    /** The applet instance (for {@link CardView}). */
    public Object applet() {
        return applet;
    }

    /**
     * Sends raw APDU bytes. When the model tore the command, the answer is meaningless
     * (jCardSim turns the {@link Torn} error into 6F00): check {@link CardMemory#wasTorn()}.
     */
    public Response transmit(byte[] apdu) {
        byte[] answer = simulator.transmitCommand(apdu);
        int sw = ((answer[answer.length - 2] & 0xFF) << 8) | (answer[answer.length - 1] & 0xFF);
        return new Response(Arrays.copyOf(answer, answer.length - 2), sw);
    }

    /** SELECT the applet (short APDU, Le 00). */
    public Response select() {
        byte[] apdu = new byte[5 + APPLET_AID.length + 1];
        apdu[1] = (byte) 0xA4;
        apdu[2] = 0x04;
        apdu[4] = (byte) APPLET_AID.length;
        System.arraycopy(APPLET_AID, 0, apdu, 5, APPLET_AID.length);
        return transmit(apdu);
    }

    /** Power off and on: an open transaction rolls back, RAM is cleared, nothing selected. */
    public void powerCycle() {
        CardMemory.powerUp();
        simulator.reset();
    }
}
