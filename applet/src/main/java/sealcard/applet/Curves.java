package sealcard.applet;

import javacard.framework.Util;
import javacard.security.ECKey;

/**
 * Elliptic-curve domain parameters, set explicitly on every EC key object: a card is
 * not required to preset any curve, and secp256k1 is never preset.
 *
 * <p>Values from SEC 2 v2 (section 2.4.1 secp256k1, section 2.4.2 secp256r1 = NIST P-256),
 * cross-checked on the host against pyca/cryptography (generator = 1*G, (n-1)*G = -G,
 * sample points on the curve).
 */
final class Curves {

    /** Length of p, a, b and n for both 256-bit curves. */
    static final short FIELD_LENGTH = (short) 32;

    /** Length of the uncompressed generator. */
    static final short POINT_LENGTH = (short) 65;

    private static final short BYTE_MASK = (short) 0xFF;

    /** Cofactor of both curves. */
    private static final short COFACTOR = (short) 1;

    private Curves() {
    }

    /**
     * Sets the NIST P-256 domain parameters on a key.
     *
     * @param key a 256-bit EC_FP public or private key object
     */
    static void setP256(ECKey key) {
        set(key, P256_P, P256_A, P256_B, P256_G, P256_N);
    }

    /**
     * Sets the secp256k1 domain parameters on a key.
     *
     * @param key a 256-bit EC_FP public or private key object
     */
    static void setSecp256k1(ECKey key) {
        set(key, SECP256K1_P, SECP256K1_A, SECP256K1_B, SECP256K1_G, SECP256K1_N);
    }

    /** Writes the secp256k1 generator G (uncompressed, {@code POINT_LENGTH} bytes). */
    static void writeSecp256k1Generator(byte[] out, short offset) {
        Util.arrayCopyNonAtomic(SECP256K1_G, (short) 0, out, offset, POINT_LENGTH);
    }

    /**
     * Whether the 32 big-endian bytes at {@code offset} are a valid secp256k1 private
     * scalar, 1 <= k < n. Looks at every byte whatever it finds (no early exit).
     */
    static boolean isSecp256k1Scalar(byte[] k, short offset) {
        short nonZero = 0;
        short less = 0;
        short decided = 0;
        for (short i = 0; i < FIELD_LENGTH; i++) {
            short a = (short) (k[(short) (offset + i)] & BYTE_MASK);
            short b = (short) (SECP256K1_N[i] & BYTE_MASK);
            nonZero |= a;
            short lt = (short) (((short) (a - b) >> 8) & 1);
            short differs = (short) (((short) (0 - (short) (a ^ b)) >> 8) & 1);
            short undecided = (short) (1 - decided);
            less |= (short) (undecided & lt);
            decided |= differs;
        }
        return nonZero != 0 && less == 1;
    }

    /** Whether the 32-byte big-endian s at {@code offset} is above n/2 (secp256k1). */
    static boolean isHighS(byte[] s, short offset) {
        return Util.arrayCompare(s, offset, SECP256K1_HALF_N, (short) 0, FIELD_LENGTH) > 0;
    }

    /** Whether the 32-byte big-endian s at {@code offset} is above n/2 (P-256). */
    static boolean isP256HighS(byte[] s, short offset) {
        return Util.arrayCompare(s, offset, P256_HALF_N, (short) 0, FIELD_LENGTH) > 0;
    }

    /** Replaces the 32-byte big-endian s at {@code offset} by n - s (secp256k1, 0 < s < n). */
    static void negateModOrder(byte[] s, short offset) {
        short borrow = 0;
        for (short i = (short) (FIELD_LENGTH - 1); i >= 0; i--) {
            short at = (short) (offset + i);
            short difference = (short) ((SECP256K1_N[i] & BYTE_MASK) - (s[at] & BYTE_MASK)
                    - borrow);
            borrow = (short) ((difference >> 8) & 1);
            s[at] = (byte) difference;
        }
    }

    private static void set(ECKey key, byte[] p, byte[] a, byte[] b, byte[] g, byte[] n) {
        key.setFieldFP(p, (short) 0, FIELD_LENGTH);
        key.setA(a, (short) 0, FIELD_LENGTH);
        key.setB(b, (short) 0, FIELD_LENGTH);
        key.setG(g, (short) 0, POINT_LENGTH);
        key.setR(n, (short) 0, FIELD_LENGTH);
        key.setK(COFACTOR);
    }

    /** NIST P-256 (secp256r1): field prime p. */
    private static final byte[] P256_P = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x01,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF
    };

    /** NIST P-256 (secp256r1): coefficient a. */
    private static final byte[] P256_A = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x01,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFC
    };

    /** NIST P-256 (secp256r1): coefficient b. */
    private static final byte[] P256_B = {
        (byte) 0x5A, (byte) 0xC6, (byte) 0x35, (byte) 0xD8, (byte) 0xAA, (byte) 0x3A, (byte) 0x93, (byte) 0xE7,
        (byte) 0xB3, (byte) 0xEB, (byte) 0xBD, (byte) 0x55, (byte) 0x76, (byte) 0x98, (byte) 0x86, (byte) 0xBC,
        (byte) 0x65, (byte) 0x1D, (byte) 0x06, (byte) 0xB0, (byte) 0xCC, (byte) 0x53, (byte) 0xB0, (byte) 0xF6,
        (byte) 0x3B, (byte) 0xCE, (byte) 0x3C, (byte) 0x3E, (byte) 0x27, (byte) 0xD2, (byte) 0x60, (byte) 0x4B
    };

    /** NIST P-256 (secp256r1): generator G, uncompressed (04 || x || y). */
    private static final byte[] P256_G = {
        (byte) 0x04, (byte) 0x6B, (byte) 0x17, (byte) 0xD1, (byte) 0xF2, (byte) 0xE1, (byte) 0x2C, (byte) 0x42,
        (byte) 0x47, (byte) 0xF8, (byte) 0xBC, (byte) 0xE6, (byte) 0xE5, (byte) 0x63, (byte) 0xA4, (byte) 0x40,
        (byte) 0xF2, (byte) 0x77, (byte) 0x03, (byte) 0x7D, (byte) 0x81, (byte) 0x2D, (byte) 0xEB, (byte) 0x33,
        (byte) 0xA0, (byte) 0xF4, (byte) 0xA1, (byte) 0x39, (byte) 0x45, (byte) 0xD8, (byte) 0x98, (byte) 0xC2,
        (byte) 0x96, (byte) 0x4F, (byte) 0xE3, (byte) 0x42, (byte) 0xE2, (byte) 0xFE, (byte) 0x1A, (byte) 0x7F,
        (byte) 0x9B, (byte) 0x8E, (byte) 0xE7, (byte) 0xEB, (byte) 0x4A, (byte) 0x7C, (byte) 0x0F, (byte) 0x9E,
        (byte) 0x16, (byte) 0x2B, (byte) 0xCE, (byte) 0x33, (byte) 0x57, (byte) 0x6B, (byte) 0x31, (byte) 0x5E,
        (byte) 0xCE, (byte) 0xCB, (byte) 0xB6, (byte) 0x40, (byte) 0x68, (byte) 0x37, (byte) 0xBF, (byte) 0x51,
        (byte) 0xF5
    };

    /** NIST P-256 (secp256r1): order n of G. */
    private static final byte[] P256_N = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xBC, (byte) 0xE6, (byte) 0xFA, (byte) 0xAD, (byte) 0xA7, (byte) 0x17, (byte) 0x9E, (byte) 0x84,
        (byte) 0xF3, (byte) 0xB9, (byte) 0xCA, (byte) 0xC2, (byte) 0xFC, (byte) 0x63, (byte) 0x25, (byte) 0x51
    };

    /** NIST P-256: floor(n / 2), the largest low S (the sealed blob's issuer signature). */
    private static final byte[] P256_HALF_N = {
        (byte) 0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0x80, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xDE, (byte) 0x73, (byte) 0x7D, (byte) 0x56, (byte) 0xD3, (byte) 0x8B, (byte) 0xCF, (byte) 0x42,
        (byte) 0x79, (byte) 0xDC, (byte) 0xE5, (byte) 0x61, (byte) 0x7E, (byte) 0x31, (byte) 0x92, (byte) 0xA8
    };

    /** secp256k1: field prime p. */
    private static final byte[] SECP256K1_P = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFE, (byte) 0xFF, (byte) 0xFF, (byte) 0xFC, (byte) 0x2F
    };

    /** secp256k1: coefficient a. */
    private static final byte[] SECP256K1_A = {
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00
    };

    /** secp256k1: coefficient b. */
    private static final byte[] SECP256K1_B = {
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00,
        (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x00, (byte) 0x07
    };

    /** secp256k1: generator G, uncompressed (04 || x || y). */
    private static final byte[] SECP256K1_G = {
        (byte) 0x04, (byte) 0x79, (byte) 0xBE, (byte) 0x66, (byte) 0x7E, (byte) 0xF9, (byte) 0xDC, (byte) 0xBB,
        (byte) 0xAC, (byte) 0x55, (byte) 0xA0, (byte) 0x62, (byte) 0x95, (byte) 0xCE, (byte) 0x87, (byte) 0x0B,
        (byte) 0x07, (byte) 0x02, (byte) 0x9B, (byte) 0xFC, (byte) 0xDB, (byte) 0x2D, (byte) 0xCE, (byte) 0x28,
        (byte) 0xD9, (byte) 0x59, (byte) 0xF2, (byte) 0x81, (byte) 0x5B, (byte) 0x16, (byte) 0xF8, (byte) 0x17,
        (byte) 0x98, (byte) 0x48, (byte) 0x3A, (byte) 0xDA, (byte) 0x77, (byte) 0x26, (byte) 0xA3, (byte) 0xC4,
        (byte) 0x65, (byte) 0x5D, (byte) 0xA4, (byte) 0xFB, (byte) 0xFC, (byte) 0x0E, (byte) 0x11, (byte) 0x08,
        (byte) 0xA8, (byte) 0xFD, (byte) 0x17, (byte) 0xB4, (byte) 0x48, (byte) 0xA6, (byte) 0x85, (byte) 0x54,
        (byte) 0x19, (byte) 0x9C, (byte) 0x47, (byte) 0xD0, (byte) 0x8F, (byte) 0xFB, (byte) 0x10, (byte) 0xD4,
        (byte) 0xB8
    };

    /** secp256k1: order n of G. */
    private static final byte[] SECP256K1_N = {
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFE,
        (byte) 0xBA, (byte) 0xAE, (byte) 0xDC, (byte) 0xE6, (byte) 0xAF, (byte) 0x48, (byte) 0xA0, (byte) 0x3B,
        (byte) 0xBF, (byte) 0xD2, (byte) 0x5E, (byte) 0x8C, (byte) 0xD0, (byte) 0x36, (byte) 0x41, (byte) 0x41
    };

    /** secp256k1: floor(n / 2), the largest low S. */
    private static final byte[] SECP256K1_HALF_N = {
        (byte) 0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, (byte) 0xFF,
        (byte) 0x5D, (byte) 0x57, (byte) 0x6E, (byte) 0x73, (byte) 0x57, (byte) 0xA4, (byte) 0x50, (byte) 0x1D,
        (byte) 0xDF, (byte) 0xE9, (byte) 0x2F, (byte) 0x46, (byte) 0x68, (byte) 0x1B, (byte) 0x20, (byte) 0xA0
    };
}
