package sealcard.simulator;

/** Hexadecimal text to bytes and back, for options and status output. */
final class Hex {
    private static final char[] DIGITS = "0123456789ABCDEF".toCharArray();
    private static final int RADIX = 16;
    private static final int NIBBLE_BITS = 4;
    private static final int NIBBLE_MASK = 0x0F;
    private static final int BYTE_MASK = 0xFF;

    private Hex() {
    }

    /** Parses hex digits; spaces and colons between bytes are allowed. */
    static byte[] decode(String text) {
        String clean = text.replace(" ", "").replace(":", "");
        if (clean.length() % 2 != 0) {
            throw new IllegalArgumentException("odd number of hex digits: " + text);
        }
        byte[] out = new byte[clean.length() / 2];
        for (int i = 0; i < out.length; i++) {
            int high = Character.digit(clean.charAt(2 * i), RADIX);
            int low = Character.digit(clean.charAt(2 * i + 1), RADIX);
            if (high < 0 || low < 0) {
                throw new IllegalArgumentException("not hex: " + text);
            }
            out[i] = (byte) ((high << NIBBLE_BITS) | low);
        }
        return out;
    }

    static String encode(byte[] data) {
        StringBuilder sb = new StringBuilder(data.length * 2);
        for (byte b : data) {
            int v = b & BYTE_MASK;
            sb.append(DIGITS[v >>> NIBBLE_BITS]).append(DIGITS[v & NIBBLE_MASK]);
        }
        return sb.toString();
    }
}
