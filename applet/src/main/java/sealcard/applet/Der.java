package sealcard.applet;

import javacard.framework.Util;

/**
 * The DER the applet reads: "these bytes are exactly one SEQUENCE", and the s of an ECDSA
 * signature.
 */
final class Der {

    private static final byte TAG_SEQUENCE = (byte) 0x30;
    private static final byte TAG_INTEGER = (byte) 0x02;
    /** The shortest ECDSA signature: 30 06 02 01 r 02 01 s. */
    private static final short SIGNATURE_MIN_LENGTH = (short) 8;
    private static final short LONG_FORM_ONE_BYTE = (short) 0x81;
    private static final short LONG_FORM_TWO_BYTES = (short) 0x82;
    private static final short SHORT_FORM_LIMIT = (short) 0x80;
    private static final short TWO_BYTE_LIMIT = (short) 0x100;
    private static final short BYTE_MASK = (short) 0xFF;

    private Der() {
    }

    /**
     * Whether {@code length} bytes at {@code offset} are one DER SEQUENCE: tag 30, a
     * definite length in its shortest form (at most two length bytes), and nothing after
     * its contents. The contents themselves are not parsed (the certificate is opaque).
     */
    static boolean isSingleSequence(byte[] data, short offset, short length) {
        if (length < 2 || data[offset] != TAG_SEQUENCE) {
            return false;
        }
        short first = (short) (data[(short) (offset + 1)] & BYTE_MASK);
        short header;
        short contents;
        if (first < SHORT_FORM_LIMIT) {
            header = 2;
            contents = first;
        } else if (first == LONG_FORM_ONE_BYTE) {
            if (length < 3) {
                return false;
            }
            header = 3;
            contents = (short) (data[(short) (offset + 2)] & BYTE_MASK);
            if (contents < SHORT_FORM_LIMIT) {
                return false;
            }
        } else if (first == LONG_FORM_TWO_BYTES) {
            if (length < 4) {
                return false;
            }
            header = 4;
            contents = Util.getShort(data, (short) (offset + 2));
            if (contents < TWO_BYTE_LIMIT) {
                return false;
            }
        } else {
            return false;
        }
        return contents == (short) (length - header);
    }

    /**
     * Copies the s of the DER ECDSA signature {@code 30 L 02 rl r 02 sl s} at {@code offset}
     * ({@code length} bytes, short-form lengths as every 256-bit curve's signature has)
     * right-aligned into {@code width} bytes of {@code out} at {@code outOffset}.
     *
     * @return false when the bytes are not exactly that shape, or s is wider than width
     */
    static boolean copySignatureS(byte[] der, short offset, short length, byte[] out,
            short outOffset, short width) {
        if (length < SIGNATURE_MIN_LENGTH || length >= SHORT_FORM_LIMIT
                || der[offset] != TAG_SEQUENCE
                || (short) (der[(short) (offset + 1)] & BYTE_MASK) != (short) (length - 2)) {
            return false;
        }
        short end = (short) (offset + length);
        short rTag = (short) (offset + 2);
        short rLength = (short) (der[(short) (rTag + 1)] & BYTE_MASK);
        short sTag = (short) (rTag + 2 + rLength);
        if (der[rTag] != TAG_INTEGER || rLength >= SHORT_FORM_LIMIT
                || (short) (sTag + 2) > end || der[sTag] != TAG_INTEGER) {
            return false;
        }
        short value = (short) (sTag + 2);
        short sLength = (short) (der[(short) (sTag + 1)] & BYTE_MASK);
        if (sLength < 1 || (short) (value + sLength) != end) {
            return false;
        }
        while (sLength > width && der[value] == 0) { // the sign byte of a positive INTEGER
            value++;
            sLength--;
        }
        if (sLength > width) {
            return false;
        }
        short pad = (short) (width - sLength);
        Util.arrayFillNonAtomic(out, outOffset, pad, (byte) 0);
        Util.arrayCopyNonAtomic(der, value, out, (short) (outOffset + pad), sLength);
        return true;
    }
}
