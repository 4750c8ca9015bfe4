package sealcard.applet;

import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.ECPublicKey;
import javacard.security.RSAPublicKey;

/**
 * Public keys in the contract's encodings: the RSA TLV pair
 * ({@code 81 82 01 00 <modulus>} {@code 82 <len> <exponent>}) and the X9.62 uncompressed
 * EC point. Platforms may hand back integers with a leading zero byte (or fewer bytes);
 * these helpers always produce the fixed widths of the contract.
 */
final class PublicKeys {

    /** Long-form length marker for two length bytes. */
    private static final byte LENGTH_TWO_BYTES = (byte) 0x82;

    private PublicKeys() {
    }

    /**
     * Writes the modulus, exactly {@code RSA_MODULUS_LENGTH} bytes, at {@code offset}.
     * {@code work} must have room for {@code RSA_MODULUS_LENGTH + 1} bytes at
     * {@code offset}.
     */
    static void writeModulus(RSAPublicKey key, byte[] work, short offset) {
        short length = key.getModulus(work, offset);
        normalize(work, offset, length, Constants.RSA_MODULUS_LENGTH);
    }

    /**
     * Writes the exponent without leading zero bytes at {@code offset}.
     *
     * @return its length
     */
    static short writeExponent(RSAPublicKey key, byte[] work, short offset) {
        short length = key.getExponent(work, offset);
        short skip = 0;
        while (skip < (short) (length - 1) && work[(short) (offset + skip)] == 0) {
            skip++;
        }
        if (skip > 0) {
            Util.arrayCopyNonAtomic(work, (short) (offset + skip), work, offset,
                    (short) (length - skip));
        }
        return (short) (length - skip);
    }

    /**
     * Writes the RSA public key TLV pair at {@code offset}.
     *
     * @return its length
     */
    static short writeRsaTlv(RSAPublicKey key, byte[] work, short offset) {
        short at = offset;
        work[at++] = Constants.TAG_RSA_MODULUS;
        work[at++] = LENGTH_TWO_BYTES;
        at = Util.setShort(work, at, Constants.RSA_MODULUS_LENGTH);
        writeModulus(key, work, at);
        at = (short) (at + Constants.RSA_MODULUS_LENGTH);
        work[at++] = Constants.TAG_RSA_EXPONENT;
        short exponentLength = writeExponent(key, work, (short) (at + 1));
        work[at++] = (byte) exponentLength;
        return (short) (at + exponentLength - offset);
    }

    /**
     * Writes the EC point ({@code EC_POINT_LENGTH} bytes) at {@code offset}.
     *
     * @return its length
     */
    static short writeEcPoint(ECPublicKey key, byte[] work, short offset) {
        short length = key.getW(work, offset);
        if (length != Constants.EC_POINT_LENGTH) {
            ISOException.throwIt(Constants.SW_UNKNOWN);
        }
        return length;
    }

    /** Left-pads with zeros or strips leading zeros so the integer is {@code width} bytes. */
    private static void normalize(byte[] work, short offset, short length, short width) {
        if (length > width) {
            short extra = (short) (length - width);
            for (short i = 0; i < extra; i++) {
                if (work[(short) (offset + i)] != 0) {
                    ISOException.throwIt(Constants.SW_UNKNOWN);
                }
            }
            Util.arrayCopyNonAtomic(work, (short) (offset + extra), work, offset, width);
        } else if (length < width) {
            short missing = (short) (width - length);
            Util.arrayCopyNonAtomic(work, offset, work, (short) (offset + missing), length);
            Util.arrayFillNonAtomic(work, offset, missing, (byte) 0);
        }
    }
}
