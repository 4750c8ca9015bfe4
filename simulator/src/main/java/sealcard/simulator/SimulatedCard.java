package sealcard.simulator;

import com.licel.jcardsim.base.Simulator;
import com.licel.jcardsim.base.SimulatorRuntime;

import javacard.framework.AID;
import javacard.framework.Applet;

/**
 * One simulated card: its own jCardSim runtime with the applet installed, and what a reader can do
 * to it (power, reset, APDUs). Every method holds the card's lock, so the vpcd link and the
 * control channel never act on the card at the same time.
 */
final class SimulatedCard {
    private static final byte[] SW_UNKNOWN = {(byte) 0x6F, (byte) 0x00};

    final int index;
    private final AppletSpec spec;
    private final byte[] atr;
    private final String protocol;
    private Simulator simulator;
    private boolean powered;
    private long apdus;
    private long resets;
    private long tears;
    private long blankResets;

    SimulatedCard(int index, AppletSpec spec, byte[] atr, String protocol) {
        this.index = index;
        this.spec = spec;
        this.atr = atr.clone();
        this.protocol = protocol;
        this.simulator = freshCard();
    }

    /** A new jCardSim runtime (never jCardSim's shared default one) with the applet installed. */
    private Simulator freshCard() {
        Simulator fresh = new Simulator(new SimulatorRuntime());
        fresh.changeProtocol(protocol);
        Class<? extends Applet> appletClass;
        try {
            appletClass = spec.loadForOneCard();
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("applet class not found: " + spec.className
                    + " (is it in the jar or on --applet-classpath?)", e);
        }
        byte[] params = spec.installArray();
        AID aid = new AID(spec.appletAid, (short) 0, (byte) spec.appletAid.length);
        try {
            fresh.installApplet(aid, appletClass, params, (short) 0, (byte) params.length);
        } catch (RuntimeException e) {
            throw new IllegalStateException("installing " + spec.className + " on card " + index
                    + " failed", e);
        }
        return fresh;
    }

    synchronized byte[] atr() {
        return atr.clone();
    }

    synchronized void powerOn() {
        if (!powered) {
            simulator.reset();
        }
        powered = true;
    }

    /** Power off: RAM (transient arrays) is lost and no applet stays selected. */
    synchronized void powerOff() {
        simulator.reset();
        powered = false;
    }

    /** Warm reset by the reader: like power off and on. */
    synchronized void warmReset() {
        simulator.reset();
        powered = true;
        resets++;
    }

    /** The card is pulled out: power is lost (between APDUs, never in the middle of one). */
    synchronized void tear() {
        simulator.reset();
        powered = false;
        tears++;
    }

    /** Replace the card by a blank one: a fresh runtime and a newly installed applet. */
    synchronized void replaceWithBlank() {
        simulator = freshCard();
        blankResets++;
    }

    synchronized byte[] transmit(byte[] apdu) {
        apdus++;
        try {
            return simulator.transmitCommand(apdu);
        } catch (RuntimeException | Error e) {
            Log.error("card " + index + ": jCardSim failed on an APDU", e);
            return SW_UNKNOWN.clone();
        }
    }

    synchronized String statusJson(int port, boolean connected) {
        return "{\"index\":" + index
                + ",\"port\":" + port
                + ",\"connected\":" + connected
                + ",\"powered\":" + powered
                + ",\"apdus\":" + apdus
                + ",\"resets\":" + resets
                + ",\"tears\":" + tears
                + ",\"blank_resets\":" + blankResets
                + "}";
    }
}
