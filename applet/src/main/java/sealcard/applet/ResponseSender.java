package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * Outgoing answers of any length. An answer longer than the host's Le is sent in parts:
 * as much as fits, then {@code 61xx} ({@code xx} = bytes still waiting, {@code 00} for 256
 * or more), the rest with GET RESPONSE. Any other command discards what is pending.
 */
final class ResponseSender {

    /** Most bytes {@code 61xx} can announce; more is announced as {@code 00}. */
    private static final short MAX_ANNOUNCED = (short) 256;

    /** Largest Le {@code setOutgoing} reports for an extended APDU. */
    private static final short MAX_LE = (short) 0x7FFF;

    private final Transients transients;

    ResponseSender(Transients transients) {
        this.transients = transients;
    }

    /**
     * Sends {@code length} bytes of {@code source} from {@code offset}, as much as the
     * host's Le allows; the rest stays pending and the command ends with {@code 61xx}.
     * The source must stay unchanged until the answer has been fetched (any command but
     * GET RESPONSE discards it first).
     */
    void send(APDU apdu, byte[] source, short offset, short length) {
        short le = apdu.setOutgoing();
        if (le < 0) {
            // An extended Le of 8000..FFFF read as a signed short (jCardSim 3.0.6.0 does not
            // cap it at 32767 as a card does): the host takes everything.
            le = MAX_LE;
        }
        short now = length;
        if (now > le) {
            now = le;
        }
        if (now > 0) {
            apdu.setOutgoingLength(now);
            apdu.sendBytesLong(source, offset, now);
        }
        short remaining = (short) (length - now);
        if (remaining > 0) {
            transients.objects[Transients.PENDING_SOURCE] = source;
            transients.shorts[Transients.PENDING_OFFSET] = (short) (offset + now);
            transients.shorts[Transients.PENDING_REMAINING] = remaining;
            short announced = remaining >= MAX_ANNOUNCED ? (short) 0 : remaining;
            ISOException.throwIt((short) (Constants.SW_BYTES_REMAINING | announced));
        }
    }

    /** Sends an answer that was built at the start of the scratch buffer. */
    void sendScratch(APDU apdu, short length) {
        send(apdu, transients.scratch, (short) 0, length);
    }

    /** GET RESPONSE: {@code 00 C0 00 00 Le}. */
    void getResponse(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        IncomingData.requireNoData(apdu);
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        short remaining = transients.shorts[Transients.PENDING_REMAINING];
        if (remaining == 0) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] source = (byte[]) transients.objects[Transients.PENDING_SOURCE];
        short offset = transients.shorts[Transients.PENDING_OFFSET];
        discard();
        send(apdu, source, offset, remaining);
    }

    /** Forgets a pending answer. */
    void discard() {
        transients.shorts[Transients.PENDING_REMAINING] = 0;
        transients.shorts[Transients.PENDING_OFFSET] = 0;
        transients.objects[Transients.PENDING_SOURCE] = null;
    }
}
