package sealcard.simulator;

/**
 * The length structure of a command APDU (ISO 7816-4, 5.1), checked before jCardSim sees it:
 * a card answers a command whose Lc does not match its data with 6700, where jCardSim
 * answers 6F00 (it reads past the data, or its 260-byte short APDU buffer overflows).
 *
 * <pre>
 * case 1   CLA INS P1 P2
 * case 2S  CLA INS P1 P2 Le
 * case 3S  CLA INS P1 P2 Lc(1..FF) data
 * case 4S  CLA INS P1 P2 Lc(1..FF) data Le
 * case 2E  CLA INS P1 P2 00 Le(2)
 * case 3E  CLA INS P1 P2 00 Lc(2, not 0) data
 * case 4E  CLA INS P1 P2 00 Lc(2, not 0) data Le(2)
 * </pre>
 */
final class CommandApdu {
    static final byte[] SW_WRONG_LENGTH = {(byte) 0x67, (byte) 0x00};

    private static final int HEADER = 4;
    private static final int OFFSET_LC = 4;
    private static final int SHORT_LC_AND_LE = 2;
    private static final int EXTENDED_MARK = 1;
    private static final int EXTENDED_FIELD = 2;
    private static final int SHORT_MAX_DATA = 0xFF;
    private static final int SHORT_LE_256 = 0x100;
    private static final int BYTE_BITS = 8;
    private static final int BYTE_MASK = 0xFF;
    /** jCardSim's short APDU buffer: a case 4S with 255 data bytes (261 bytes) overflows it. */
    private static final int JCARDSIM_SHORT_BUFFER = 260;

    private CommandApdu() {
    }

    /** Whether the bytes are exactly one command APDU of one of the seven cases. */
    static boolean isWellFormed(byte[] c) {
        int length = c.length;
        if (length < HEADER) {
            return false;
        }
        if (length == HEADER || length == HEADER + 1) {
            return true; // case 1, case 2S
        }
        int first = c[OFFSET_LC] & BYTE_MASK;
        if (first != 0) { // short Lc
            return length == HEADER + 1 + first || length == HEADER + SHORT_LC_AND_LE + first;
        }
        if (length == HEADER + EXTENDED_MARK + EXTENDED_FIELD) {
            return true; // case 2E
        }
        if (length < HEADER + EXTENDED_MARK + EXTENDED_FIELD) {
            return false;
        }
        int lc = ((c[OFFSET_LC + 1] & BYTE_MASK) << BYTE_BITS) | (c[OFFSET_LC + 2] & BYTE_MASK);
        int withoutLe = HEADER + EXTENDED_MARK + EXTENDED_FIELD + lc;
        return lc != 0 && (length == withoutLe || length == withoutLe + EXTENDED_FIELD);
    }

    /**
     * The same command in a form jCardSim can take: a case 4S with 255 data bytes goes as the
     * equivalent case 4E (same data, Le 00 = 256), which the applet (ExtendedLength) handles as
     * a card with a 261-byte APDU buffer would handle the short one. Every other command is
     * returned as it is.
     */
    static byte[] forJcardsim(byte[] c) {
        if (c.length <= JCARDSIM_SHORT_BUFFER || (c[OFFSET_LC] & BYTE_MASK) != SHORT_MAX_DATA
                || c.length != HEADER + SHORT_LC_AND_LE + SHORT_MAX_DATA) {
            return c;
        }
        int le = c[c.length - 1] & BYTE_MASK;
        if (le == 0) {
            le = SHORT_LE_256;
        }
        byte[] extended = new byte[HEADER + EXTENDED_MARK + EXTENDED_FIELD + SHORT_MAX_DATA
                + EXTENDED_FIELD];
        System.arraycopy(c, 0, extended, 0, HEADER);
        extended[OFFSET_LC] = 0;
        extended[OFFSET_LC + 1] = 0;
        extended[OFFSET_LC + 2] = (byte) SHORT_MAX_DATA;
        System.arraycopy(c, HEADER + 1, extended, HEADER + EXTENDED_MARK + EXTENDED_FIELD,
                SHORT_MAX_DATA);
        extended[extended.length - 2] = (byte) (le >>> BYTE_BITS);
        extended[extended.length - 1] = (byte) le;
        return extended;
    }
}
