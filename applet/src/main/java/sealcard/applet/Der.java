package sealcard.applet;

import javacard.framework.Util;

/** The one DER check the applet needs: "these bytes are exactly one SEQUENCE". */
final class Der {

    private static final byte TAG_SEQUENCE = (byte) 0x30;
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
}
