package sealcard.applet;

/**
 * The shape of PINs and PUKs in command data: ASCII digits, within their length limits,
 * in one-byte-tag one-byte-length TLVs ({@code TAG_PIN}, {@code TAG_PUK}). A pair
 * {@code T1 L1 V1 T2 L2 V2} has its first value at 2 and its second TLV at {@code 2 + L1}.
 */
final class PinFormat {

    /** Offset of the first value in a TLV pair (after tag and length). */
    static final short FIRST_VALUE = (short) 2;
    /** A TLV's header: tag and length. */
    static final short HEADER = (short) 2;

    private static final byte DIGIT_ZERO = (byte) 0x30;
    private static final byte DIGIT_NINE = (byte) 0x39;

    private PinFormat() {
    }

    /** Whether {@code length} bytes at {@code offset} are ASCII digits (every byte looked at). */
    static boolean isDigits(byte[] data, short offset, short length) {
        boolean digits = true;
        for (short i = 0; i < length; i++) {
            byte value = data[(short) (offset + i)];
            digits &= value >= DIGIT_ZERO && value <= DIGIT_NINE;
        }
        return digits;
    }

    /** Whether {@code value} of {@code length} bytes is a PIN (tag 03) or PUK (tag 04) value. */
    static boolean isSecret(byte tag, byte[] data, short offset, short length) {
        byte min = tag == Constants.TAG_PIN ? Constants.PIN_MIN_LENGTH : Constants.PUK_MIN_LENGTH;
        byte max = tag == Constants.TAG_PIN ? Constants.PIN_MAX_LENGTH : Constants.PUK_MAX_LENGTH;
        return length >= min && length <= max && isDigits(data, offset, length);
    }

    /**
     * Whether the {@code length} bytes at {@code offset} are exactly one TLV with this tag
     * holding a valid PIN/PUK value.
     */
    static boolean isSingle(byte[] data, short offset, short length, byte tag) {
        return length >= HEADER && data[offset] == tag
                && data[(short) (offset + 1)] == (short) (length - HEADER)
                && isSecret(tag, data, (short) (offset + HEADER), (short) (length - HEADER));
    }

    /**
     * Whether the {@code length} bytes at {@code offset} are exactly two such TLVs, tags
     * {@code first} then {@code second}.
     */
    static boolean isPair(byte[] data, short offset, short length, byte first, byte second) {
        if (length < (short) (2 * HEADER) || data[offset] != first) {
            return false;
        }
        short firstLength = data[(short) (offset + 1)];
        if (firstLength < 0 || (short) (HEADER + firstLength + HEADER) > length) {
            return false;
        }
        short next = (short) (offset + HEADER + firstLength);
        return isSecret(first, data, (short) (offset + HEADER), firstLength)
                && isSingle(data, next, (short) (length - HEADER - firstLength), second);
    }

    /** Length of the first value of a pair that passed {@link #isPair}. */
    static byte firstLength(byte[] data, short offset) {
        return data[(short) (offset + 1)];
    }

    /** Offset of the second value of a pair that passed {@link #isPair}. */
    static short secondValue(byte[] data, short offset) {
        return (short) (offset + HEADER + firstLength(data, offset) + HEADER);
    }

    /** Length of the second value of a pair that passed {@link #isPair}. */
    static byte secondLength(byte[] data, short offset) {
        return data[(short) (offset + HEADER + firstLength(data, offset) + 1)];
    }
}
