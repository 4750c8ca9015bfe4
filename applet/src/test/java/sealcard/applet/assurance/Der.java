package sealcard.applet.assurance;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;

/** DER ECDSA signatures: (r, s) in and out (test side). */
final class Der {

    static final BigInteger P256_N = new BigInteger(
            "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16);

    private Der() {
    }

    static BigInteger[] decode(byte[] der) {
        int at = 2;
        if (der[0] != 0x30) {
            throw new IllegalArgumentException("not a SEQUENCE");
        }
        int rLength = der[at + 1];
        BigInteger r = new BigInteger(1, java.util.Arrays.copyOfRange(der, at + 2,
                at + 2 + rLength));
        at += 2 + rLength;
        int sLength = der[at + 1];
        BigInteger s = new BigInteger(1, java.util.Arrays.copyOfRange(der, at + 2,
                at + 2 + sLength));
        return new BigInteger[] {r, s};
    }

    static byte[] encode(BigInteger r, BigInteger s) {
        byte[] rb = r.toByteArray();
        byte[] sb = s.toByteArray();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0x30);
        out.write(4 + rb.length + sb.length);
        out.write(0x02);
        out.write(rb.length);
        out.writeBytes(rb);
        out.write(0x02);
        out.write(sb.length);
        out.writeBytes(sb);
        return out.toByteArray();
    }

    /** The other valid signature of the same message: (r, n - s). */
    static byte[] twin(byte[] der, BigInteger order) {
        BigInteger[] rs = decode(der);
        return encode(rs[0], order.subtract(rs[1]));
    }

    static boolean isHigh(byte[] der, BigInteger order) {
        return decode(der)[1].compareTo(order.shiftRight(1)) > 0;
    }
}
