package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * Receiving command data of any length (short or extended APDUs), checked against the
 * destination's capacity before a single byte is written.
 */
final class IncomingData {

    private IncomingData() {
    }

    /**
     * Refuses a command that carries data ({@code 6700}). Under T=0 a case-2 command
     * cannot be told from a case-3 one, and the JCRE never hands over data unasked, so the
     * check is made under the other protocols only.
     */
    static void requireNoData(APDU apdu) {
        if ((byte) (APDU.getProtocol() & APDU.PROTOCOL_TYPE_MASK) == APDU.PROTOCOL_T0) {
            return;
        }
        if (apdu.setIncomingAndReceive() != 0) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
    }

    /**
     * Receives all command data into {@code destination}.
     *
     * @param capacity the most bytes the destination takes from {@code destinationOffset}
     * @param tooLongStatus the status word thrown when Lc exceeds {@code capacity}
     * @return the number of bytes received (Lc)
     */
    static short receive(APDU apdu, byte[] destination, short destinationOffset, short capacity,
            short tooLongStatus) {
        byte[] buffer = apdu.getBuffer();
        short received = apdu.setIncomingAndReceive();
        short total = apdu.getIncomingLength();
        if (total > capacity) {
            ISOException.throwIt(tooLongStatus);
        }
        short dataOffset = apdu.getOffsetCdata();
        short done = 0;
        while (received > 0) {
            if ((short) (done + received) > total) {
                ISOException.throwIt(Constants.SW_WRONG_LENGTH);
            }
            Util.arrayCopyNonAtomic(buffer, dataOffset, destination,
                    (short) (destinationOffset + done), received);
            done = (short) (done + received);
            if (done == total) {
                break;
            }
            received = apdu.receiveBytes(dataOffset);
        }
        if (done != total) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        return done;
    }
}
