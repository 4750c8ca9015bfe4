package sealcard.applet;

import javacard.framework.ISOException;
import javacard.framework.Util;

/**
 * Low-S normalization of a DER ECDSA secp256k1 signature (BIP 62 / EIP-2): when
 * s > n/2, s := n - s, and the DER is written again with minimal INTEGER encodings.
 * Both (r, s) and (r, n - s) verify; Bitcoin and Ethereum accept only the low one.
 */
final class LowS {

    private static final byte TAG_SEQUENCE = (byte) 0x30;
    private static final byte TAG_INTEGER = (byte) 0x02;
    private static final short WIDTH = Curves.FIELD_LENGTH;
    private static final short HIGH_BIT = (short) 0x80;

    private LowS() {
    }

    /**
     * Normalizes the DER signature {@code der[offset .. offset + length)} in place, using
     * {@code WIDTH} bytes of {@code work} at {@code workOffset}.
     *
     * @return the new length
     */
    static short normalize(byte[] der, short offset, short length, byte[] work,
            short workOffset) {
        // 30 L 02 rl r 02 sl s (all lengths short form for 256-bit curves)
        short rTag = (short) (offset + 2);
        if (length < 8 || der[offset] != TAG_SEQUENCE || der[rTag] != TAG_INTEGER) {
            ISOException.throwIt(Constants.SW_UNKNOWN);
        }
        short rLength = der[(short) (rTag + 1)];
        short sTag = (short) (rTag + 2 + rLength);
        short sLength = der[(short) (sTag + 1)];
        if (der[sTag] != TAG_INTEGER || sLength < 1 || sLength > (short) (WIDTH + 1)
                || (short) (sTag + 2 + sLength) != (short) (offset + length)) {
            ISOException.throwIt(Constants.SW_UNKNOWN);
        }
        // s as exactly 32 bytes
        short sValue = (short) (sTag + 2);
        Util.arrayFillNonAtomic(work, workOffset, WIDTH, (byte) 0);
        if (sLength > WIDTH) {
            Util.arrayCopyNonAtomic(der, (short) (sValue + 1), work, workOffset, WIDTH);
        } else {
            Util.arrayCopyNonAtomic(der, sValue, work, (short) (workOffset + WIDTH - sLength),
                    sLength);
        }
        if (!Curves.isHighS(work, workOffset)) {
            return length;
        }
        Curves.negateModOrder(work, workOffset);
        // minimal INTEGER: drop leading zeros, add one back when the top bit is set
        short skip = 0;
        while (skip < (short) (WIDTH - 1) && work[(short) (workOffset + skip)] == 0) {
            skip++;
        }
        short newLength = (short) (WIDTH - skip);
        boolean pad = (short) (work[(short) (workOffset + skip)] & HIGH_BIT) != 0;
        short at = (short) (sTag + 1);
        der[at++] = (byte) (pad ? newLength + 1 : newLength);
        if (pad) {
            der[at++] = 0;
        }
        at = Util.arrayCopyNonAtomic(work, (short) (workOffset + skip), der, at, newLength);
        der[(short) (offset + 1)] = (byte) (at - offset - 2);
        return (short) (at - offset);
    }
}
