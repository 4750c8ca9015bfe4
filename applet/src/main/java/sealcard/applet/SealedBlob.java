package sealcard.applet;

import javacard.framework.Util;

/**
 * The sealed blob's layout (docs/sealed-blob.md, format version 1) and its framing check:
 *
 * <pre>
 * "SCB" || 01 || n || serial (n) || 01 00 || ciphertext (256) || s || signature (s)
 * </pre>
 *
 * The issuer signs everything before the signature length byte.
 */
final class SealedBlob {

    /** Offset of the serial length byte; the serial follows it. */
    static final short SERIAL_LENGTH_OFFSET = (short) 4;
    static final short SERIAL_OFFSET = (short) 5;

    /** Ciphertext length field (2 bytes) and the fixed ciphertext length. */
    static final short CIPHERTEXT_LENGTH_FIELD = (short) 2;
    static final short CIPHERTEXT_LENGTH = Constants.RSA_MODULUS_LENGTH;

    static final short SIGNATURE_MIN_LENGTH = (short) 8;
    static final short SIGNATURE_MAX_LENGTH = Persistent.MAX_ECDSA_SIGNATURE_LENGTH;

    /** Longest blob: 5 + 16 + 2 + 256 + 1 + 72 = 352 bytes. */
    static final short MAX_LENGTH = (short) (SERIAL_OFFSET + Constants.SERIAL_MAX_LENGTH
            + CIPHERTEXT_LENGTH_FIELD + CIPHERTEXT_LENGTH + 1 + SIGNATURE_MAX_LENGTH);

    private static final byte MAGIC_S = (byte) 0x53;
    private static final byte MAGIC_C = (byte) 0x43;
    private static final byte MAGIC_B = (byte) 0x42;
    private static final short VERSION_OFFSET = (short) 3;

    private SealedBlob() {
    }

    /** Serial length of a blob that passed {@link #isWellFramed}. */
    static short serialLength(byte[] blob) {
        return blob[SERIAL_LENGTH_OFFSET];
    }

    /** Offset of the ciphertext (also the end of the serial's length-2 field). */
    static short ciphertextOffset(byte[] blob) {
        return (short) (SERIAL_OFFSET + serialLength(blob) + CIPHERTEXT_LENGTH_FIELD);
    }

    /** Length of the signed message: everything before the signature length byte. */
    static short signedLength(byte[] blob) {
        return (short) (ciphertextOffset(blob) + CIPHERTEXT_LENGTH);
    }

    /** Offset of the DER signature. */
    static short signatureOffset(byte[] blob) {
        return (short) (signedLength(blob) + 1);
    }

    /** Length of the DER signature. */
    static short signatureLength(byte[] blob) {
        return (short) (blob[signedLength(blob)] & 0xFF);
    }

    /**
     * Magic, version, every length in range and consistent, and nothing after the
     * signature: the blob's {@code length} bytes are exactly one version-1 blob.
     */
    static boolean isWellFramed(byte[] blob, short length) {
        if (length < SERIAL_OFFSET || blob[0] != MAGIC_S || blob[1] != MAGIC_C
                || blob[2] != MAGIC_B || blob[VERSION_OFFSET] != Constants.BLOB_FORMAT_VERSION) {
            return false;
        }
        short serialLength = blob[SERIAL_LENGTH_OFFSET];
        if (serialLength < Constants.SERIAL_MIN_LENGTH
                || serialLength > Constants.SERIAL_MAX_LENGTH) {
            return false;
        }
        short lengthField = (short) (SERIAL_OFFSET + serialLength);
        if (length < (short) (lengthField + CIPHERTEXT_LENGTH_FIELD + CIPHERTEXT_LENGTH + 1)
                || Util.getShort(blob, lengthField) != CIPHERTEXT_LENGTH) {
            return false;
        }
        short signatureLength = signatureLength(blob);
        return signatureLength >= SIGNATURE_MIN_LENGTH
                && signatureLength <= SIGNATURE_MAX_LENGTH
                && length == (short) (signatureOffset(blob) + signatureLength);
    }

    /** Whether the blob names this card's serial. */
    static boolean namesSerial(byte[] blob, byte[] serial, short serialLength) {
        return serialLength(blob) == serialLength
                && Util.arrayCompare(blob, SERIAL_OFFSET, serial, (short) 0, serialLength) == 0;
    }
}
