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
    /** ISO 7816-4 "file or application not found": a card manager's answer to SELECT of no AID. */
    private static final byte[] SW_FILE_NOT_FOUND = {(byte) 0x6A, (byte) 0x82};
    /** jCardSim's own answer when a SELECT matches no applet and none is selected. */
    private static final short SW_JCARDSIM_SELECT_FAILED = (short) 0x6999;
    private static final int OFFSET_INS = 1;
    private static final int OFFSET_P1 = 2;
    private static final byte INS_SELECT = (byte) 0xA4;
    private static final byte P1_SELECT_BY_NAME = 0x04;
    private static final int SW_LENGTH = 2;
    private static final int BYTE_BITS = 8;
    private static final int BYTE_MASK = 0xFF;
    private static final long NANOS_PER_MS = 1_000_000L;

    final int index;
    private final AppletSpec spec;
    private final byte[] atr;
    private final String protocol;
    private final CardTiming timing;
    private Simulator simulator;
    private boolean powered;
    private long apdus;
    private long resets;
    private long tears;
    private long blankResets;

    SimulatedCard(int index, AppletSpec spec, byte[] atr, String protocol, String timing) {
        this.index = index;
        this.timing = CardTiming.named(timing, index);
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

    /**
     * One APDU. With a timing model the answer leaves no sooner than the modelled chip would
     * send it (the card stays busy, holding its lock, as a real one would).
     */
    synchronized byte[] transmit(byte[] apdu) {
        apdus++;
        long start = System.nanoTime();
        byte[] response;
        if (!CommandApdu.isWellFormed(apdu)) {
            response = CommandApdu.SW_WRONG_LENGTH.clone(); // as a card: Lc does not match the data
        } else {
            try {
                response = asRealCard(apdu,
                        simulator.transmitCommand(CommandApdu.forJcardsim(apdu)));
            } catch (RuntimeException | Error e) {
                Log.error("card " + index + ": jCardSim failed on an APDU", e);
                response = SW_UNKNOWN.clone();
            }
        }
        waitUntil(start + timing.nanos(apdu, response));
        return response;
    }

    private static void waitUntil(long deadline) {
        long left = deadline - System.nanoTime();
        while (left > 0) {
            try {
                Thread.sleep(left / NANOS_PER_MS, (int) (left % NANOS_PER_MS));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            left = deadline - System.nanoTime();
        }
    }

    /**
     * Where jCardSim answers unlike a card with a GlobalPlatform card manager: a SELECT by name
     * of an AID no applet has, with no applet selected, gets 6A82 (jCardSim: 6999).
     */
    private static byte[] asRealCard(byte[] command, byte[] response) {
        boolean selectByName = command.length > OFFSET_P1 && command[OFFSET_INS] == INS_SELECT
                && command[OFFSET_P1] == P1_SELECT_BY_NAME;
        if (selectByName && response.length == SW_LENGTH) {
            short sw = (short) (((response[0] & BYTE_MASK) << BYTE_BITS)
                    | (response[1] & BYTE_MASK));
            if (sw == SW_JCARDSIM_SELECT_FAILED) {
                return SW_FILE_NOT_FOUND.clone();
            }
        }
        return response;
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
                + ",\"timing\":\"" + timing.name() + "\""
                + "}";
    }
}
