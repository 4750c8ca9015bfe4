package sealcard.applet.smoke;

import com.licel.jcardsim.base.Simulator;
import com.licel.jcardsim.base.SimulatorRuntime;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import javacard.framework.AID;
import sealcard.applet.Constants;
import sealcard.applet.SealcardApplet;

/** One simulated card with the applet installed, driven by raw APDU bytes (test code). */
final class SmokeCard {

    static final byte[] APPLET_AID = {
        (byte) 0xF0, 0x53, 0x45, 0x41, 0x4C, 0x43, 0x41, 0x52, 0x44, 0x01
    };

    /** An answer: data and status word. */
    record Response(byte[] data, int sw) {
        int sw1() {
            return (sw >> 8) & 0xFF;
        }
    }

    /** Own runtime per card: {@code new Simulator()} would share jCardSim's default runtime. */
    private final Simulator simulator = new Simulator(new SimulatorRuntime());
    private final AID aid = new AID(APPLET_AID, (short) 0, (byte) APPLET_AID.length);

    /** The protocol the applet sees, as in the simulator launcher's default. */
    static final String PROTOCOL = "T=1";

    SmokeCard() {
        simulator.changeProtocol(PROTOCOL);
        simulator.installApplet(aid, SealcardApplet.class);
    }

    /** Sends raw APDU bytes. */
    Response transmit(byte[] apdu) {
        byte[] answer = simulator.transmitCommand(apdu);
        int sw = ((answer[answer.length - 2] & 0xFF) << 8) | (answer[answer.length - 1] & 0xFF);
        return new Response(Arrays.copyOf(answer, answer.length - 2), sw);
    }

    /** Sends and follows 61xx with GET RESPONSE (short Le 00) until the answer is whole. */
    Response transmitAll(byte[] apdu) {
        Response response = transmit(apdu);
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        all.writeBytes(response.data());
        while (response.sw1() == 0x61) {
            response = transmit(Apdus.shortApdu(Constants.CLA_ISO7816, Constants.INS_GET_RESPONSE,
                    0, 0, null, 0x100));
            all.writeBytes(response.data());
        }
        return new Response(all.toByteArray(), response.sw());
    }

    /** SELECT by AID, with Le 00, following 61xx. */
    Response select() {
        return transmitAll(Apdus.shortApdu(Constants.CLA_ISO7816, Constants.INS_SELECT,
                Constants.SELECT_P1_BY_NAME, 0, APPLET_AID, 0x100));
    }

    /** Power cycle: RAM (transient arrays, open chains, pending answers) is lost. */
    void reset() {
        simulator.reset();
    }
}
