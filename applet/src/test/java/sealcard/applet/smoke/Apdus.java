package sealcard.applet.smoke;

import java.io.ByteArrayOutputStream;

/** APDU encodings (ISO 7816-4 short and extended forms) for the smoke test. */
public final class Apdus {

    /** No Le field. */
    public static final int NO_LE = -1;

    private Apdus() {
    }

    /** Short APDU; {@code le} 1..256 (256 is encoded 00) or {@link #NO_LE}. */
    public static byte[] shortApdu(int cla, int ins, int p1, int p2, byte[] data, int le) {
        ByteArrayOutputStream out = header(cla, ins, p1, p2);
        if (data != null && data.length > 0) {
            if (data.length > 255) {
                throw new IllegalArgumentException("short APDU data over 255 bytes");
            }
            out.write(data.length);
            out.writeBytes(data);
        }
        if (le != NO_LE) {
            out.write(le & 0xFF);
        }
        return out.toByteArray();
    }

    /** Extended APDU; {@code le} 1..65536 (65536 is encoded 0000) or {@link #NO_LE}. */
    public static byte[] extendedApdu(int cla, int ins, int p1, int p2, byte[] data, int le) {
        ByteArrayOutputStream out = header(cla, ins, p1, p2);
        out.write(0);
        boolean hasData = data != null && data.length > 0;
        if (hasData) {
            out.write((data.length >> 8) & 0xFF);
            out.write(data.length & 0xFF);
            out.writeBytes(data);
        }
        if (le != NO_LE) {
            out.write((le >> 8) & 0xFF);
            out.write(le & 0xFF);
        }
        return out.toByteArray();
    }

    private static ByteArrayOutputStream header(int cla, int ins, int p1, int p2) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(cla & 0xFF);
        out.write(ins & 0xFF);
        out.write(p1 & 0xFF);
        out.write(p2 & 0xFF);
        return out;
    }

    public static String hex(byte[] data) {
        StringBuilder text = new StringBuilder();
        for (byte b : data) {
            text.append(String.format("%02X", b & 0xFF));
        }
        return text.toString();
    }
}
