package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * ISO 7816-4 command chaining: every chunk but the last carries the chaining bit
 * ({@code CLA 90}). The chain state lives in RAM, so a reset or a new SELECT abandons an
 * open chain and whatever it had written to a spare buffer is never made current.
 */
final class ChainedInput {

    /** What {@link #receive} returns while the chain stays open (more chunks to come). */
    static final short MORE_TO_COME = (short) -1;

    private static final short OPEN = (short) 1;

    private final Transients transients;

    ChainedInput(Transients transients) {
        this.transients = transients;
    }

    /** Whether the command's CLA carries the chaining bit. */
    static boolean hasChainingBit(byte[] buffer) {
        return (buffer[ISO7816.OFFSET_CLA] & Constants.CLA_CHAINING_BIT) != 0;
    }

    /** Whether a chain is open (a chunk with the chaining bit was accepted). */
    boolean isOpen() {
        return transients.shorts[Transients.CHAIN_OPEN] == OPEN;
    }

    /**
     * With a chain open, refuses ({@code 6883}, closing the chain) any command that does
     * not continue it: another INS or another P1P2.
     */
    void checkContinues(byte[] buffer) {
        if (!isOpen()) {
            return;
        }
        if (buffer[ISO7816.OFFSET_INS] != (byte) transients.shorts[Transients.CHAIN_INS]
                || Util.getShort(buffer, ISO7816.OFFSET_P1)
                        != transients.shorts[Transients.CHAIN_P1P2]) {
            reset();
            ISOException.throwIt(Constants.SW_LAST_COMMAND_OF_CHAIN_EXPECTED);
        }
    }

    /** Bytes accepted so far in the open chain (0 when none is open). */
    short received() {
        return isOpen() ? transients.shorts[Transients.CHAIN_RECEIVED] : (short) 0;
    }

    /**
     * Receives one chunk of a chained command into {@code destination}, after the bytes the
     * open chain has already written there (from offset 0). An empty chunk is refused
     * ({@code 6700}); one that would take the total past {@code capacity} is refused with
     * {@code tooLongStatus}. A chunk with the chaining bit keeps the chain open; the last one
     * closes it.
     *
     * @return the total length once the last chunk has arrived, else {@link #MORE_TO_COME}
     */
    short receive(APDU apdu, byte[] destination, short capacity, short tooLongStatus) {
        short before = received();
        short length = IncomingData.receive(apdu, destination, before,
                (short) (capacity - before), tooLongStatus);
        if (length == 0) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        short total = (short) (before + length);
        if (hasChainingBit(apdu.getBuffer())) {
            keepOpen(apdu, total);
            return MORE_TO_COME;
        }
        reset();
        return total;
    }

    /** Records an accepted non-final chunk: the chain is (still) open with this total. */
    private void keepOpen(APDU apdu, short totalReceived) {
        byte[] buffer = apdu.getBuffer();
        transients.shorts[Transients.CHAIN_INS] = buffer[ISO7816.OFFSET_INS];
        transients.shorts[Transients.CHAIN_P1P2] = Util.getShort(buffer, ISO7816.OFFSET_P1);
        transients.shorts[Transients.CHAIN_RECEIVED] = totalReceived;
        transients.shorts[Transients.CHAIN_OPEN] = OPEN;
    }

    /** Closes the chain (after its last chunk, on any error, on SELECT). */
    void reset() {
        transients.shorts[Transients.CHAIN_OPEN] = 0;
        transients.shorts[Transients.CHAIN_INS] = 0;
        transients.shorts[Transients.CHAIN_P1P2] = 0;
        transients.shorts[Transients.CHAIN_RECEIVED] = 0;
    }
}
