package sealcard.applet.smoke;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.SecureRandom;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.RSAPublicKeySpec;
import java.util.Arrays;
import javax.crypto.Cipher;
import javax.crypto.spec.OAEPParameterSpec;
import javax.crypto.spec.PSource;

/**
 * Test-side sealing of blobs (docs/sealed-blob.md) in Java, independent of the applet: the
 * JDK's OAEP for good blobs, a hand-written OAEP encoder (checked against the JDK's) to
 * make well-signed blobs with one defect in the padding.
 */
public final class Sealing {

    public static final int MODULUS_LENGTH = 256;
    public static final int HASH_LENGTH = 32;
    public static final BigInteger SECP256K1_N = new BigInteger(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16);
    public static final BigInteger P256_N = new BigInteger(
            "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16);
    private static final SecureRandom RANDOM = new SecureRandom();

    private Sealing() {
    }

    public static RSAPublicKey rsaKey(byte[] rsaTlv) throws Exception {
        BigInteger modulus = new BigInteger(1, Arrays.copyOfRange(rsaTlv, 4, 4 + MODULUS_LENGTH));
        int exponentLength = rsaTlv[261] & 0xFF;
        BigInteger exponent = new BigInteger(1, Arrays.copyOfRange(rsaTlv, 262, 262 + exponentLength));
        return (RSAPublicKey) KeyFactory.getInstance("RSA")
                .generatePublic(new RSAPublicKeySpec(modulus, exponent));
    }

    public static KeyPair p256Pair() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        return generator.generateKeyPair();
    }

    public static byte[] point(ECPublicKey key) {
        byte[] out = new byte[65];
        out[0] = 0x04;
        fixed(key.getW().getAffineX(), out, 1);
        fixed(key.getW().getAffineY(), out, 33);
        return out;
    }

    public static void fixed(BigInteger value, byte[] out, int offset) {
        byte[] raw = value.toByteArray();
        int skip = raw.length > 32 ? raw.length - 32 : 0;
        System.arraycopy(raw, skip, out, offset + 32 - (raw.length - skip), raw.length - skip);
    }

    public static byte[] scalar(BigInteger k) {
        byte[] out = new byte[32];
        fixed(k, out, 0);
        return out;
    }

    public static byte[] randomUserKey() {
        BigInteger k;
        do {
            k = new BigInteger(256, RANDOM);
        } while (k.signum() == 0 || k.compareTo(SECP256K1_N) >= 0);
        return scalar(k);
    }

    public static byte[] tlv(int tag, byte[] value) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        out.write(value.length);
        out.writeBytes(value);
        return out.toByteArray();
    }

    public static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    /** Payload TLVs; {@code pin}/{@code puk} null to leave them out. */
    public static byte[] payload(byte[] userKey, byte[] authPoint, String pin, String puk) {
        byte[] fixedPart = concat(tlv(0x01, userKey), tlv(0x02, authPoint));
        if (pin == null && puk == null) {
            return fixedPart;
        }
        return concat(fixedPart, pin == null ? new byte[0] : tlv(0x03, pin.getBytes()),
                puk == null ? new byte[0] : tlv(0x04, puk.getBytes()));
    }

    public static byte[] oaepJdk(byte[] message, RSAPublicKey key) throws Exception {
        Cipher cipher = Cipher.getInstance("RSA/ECB/OAEPPadding");
        cipher.init(Cipher.ENCRYPT_MODE, key, new OAEPParameterSpec("SHA-256", "MGF1",
                MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT));
        return cipher.doFinal(message);
    }

    /** A defect to put into a hand-made OAEP encoding. */
    public enum Defect { NONE, Y_NOT_ZERO, LABEL_HASH, NO_SEPARATOR, PS_NOT_ZERO }

    /** EM = Y || maskedSeed || maskedDB (RFC 8017 7.1.1), with an optional defect. */
    public static byte[] oaepEncode(byte[] message, Defect defect) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        byte[] lHash = sha.digest(new byte[0]);
        int dbLength = MODULUS_LENGTH - HASH_LENGTH - 1;
        byte[] db = new byte[dbLength];
        System.arraycopy(lHash, 0, db, 0, HASH_LENGTH);
        int separator = dbLength - message.length - 1;
        db[separator] = 0x01;
        System.arraycopy(message, 0, db, separator + 1, message.length);
        switch (defect) {
            case LABEL_HASH -> db[5] ^= 0x01;
            case NO_SEPARATOR -> db[separator] = 0x00;
            case PS_NOT_ZERO -> db[separator - 3] = 0x07;
            default -> { }
        }
        byte[] seed = new byte[HASH_LENGTH];
        RANDOM.nextBytes(seed);
        xor(db, mgf1(seed, dbLength));
        byte[] maskedSeed = seed.clone();
        xor(maskedSeed, mgf1(db, HASH_LENGTH));
        byte[] em = new byte[MODULUS_LENGTH];
        em[0] = defect == Defect.Y_NOT_ZERO ? (byte) 0x01 : 0;
        System.arraycopy(maskedSeed, 0, em, 1, HASH_LENGTH);
        System.arraycopy(db, 0, em, 1 + HASH_LENGTH, dbLength);
        return em;
    }

    /** Raw RSA of an EM (must be below the modulus). */
    public static byte[] rawRsa(byte[] em, RSAPublicKey key) {
        BigInteger c = new BigInteger(1, em).modPow(key.getPublicExponent(), key.getModulus());
        byte[] out = new byte[MODULUS_LENGTH];
        byte[] raw = c.toByteArray();
        int skip = raw.length > MODULUS_LENGTH ? raw.length - MODULUS_LENGTH : 0;
        System.arraycopy(raw, skip, out, MODULUS_LENGTH - (raw.length - skip), raw.length - skip);
        return out;
    }

    /** Decrypt-side check of the hand encoder: the JDK must open what it makes. */
    public static byte[] oaepJdkDecrypt(byte[] ciphertext, PrivateKey key) throws Exception {
        Cipher cipher = Cipher.getInstance("RSA/ECB/OAEPPadding");
        cipher.init(Cipher.DECRYPT_MODE, key, new OAEPParameterSpec("SHA-256", "MGF1",
                MGF1ParameterSpec.SHA256, PSource.PSpecified.DEFAULT));
        return cipher.doFinal(ciphertext);
    }

    private static byte[] mgf1(byte[] seed, int length) throws Exception {
        MessageDigest sha = MessageDigest.getInstance("SHA-256");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int counter = 0; out.size() < length; counter++) {
            sha.update(seed);
            sha.update(new byte[] {(byte) (counter >>> 24), (byte) (counter >>> 16),
                (byte) (counter >>> 8), (byte) counter});
            out.writeBytes(sha.digest());
        }
        return Arrays.copyOf(out.toByteArray(), length);
    }

    private static void xor(byte[] target, byte[] mask) {
        for (int i = 0; i < target.length; i++) {
            target[i] ^= mask[i];
        }
    }

    public static byte[] signedPart(byte[] serial, byte[] ciphertext) {
        return concat(new byte[] {0x53, 0x43, 0x42, 0x01, (byte) serial.length}, serial,
                new byte[] {(byte) (ciphertext.length >> 8), (byte) ciphertext.length}, ciphertext);
    }

    public static byte[] ecdsa(PrivateKey key, byte[] message) throws Exception {
        Signature signer = Signature.getInstance("SHA256withECDSA");
        signer.initSign(key);
        signer.update(message);
        return signer.sign();
    }

    /** A blob as the issuer HSM makes it: the issuer signature in low-S form (s <= n/2). */
    public static byte[] blob(byte[] serial, byte[] ciphertext, PrivateKey issuer) throws Exception {
        return blobWithS(serial, ciphertext, issuer, false);
    }

    /** The same signature in its low-S or its high-S form: both verify as ECDSA. */
    public static byte[] blobWithS(byte[] serial, byte[] ciphertext, PrivateKey issuer, boolean high)
            throws Exception {
        byte[] signed = signedPart(serial, ciphertext);
        BigInteger[] rs = derToRs(ecdsa(issuer, signed));
        BigInteger s = rs[1];
        boolean isHigh = s.compareTo(P256_N.shiftRight(1)) > 0;
        if (isHigh != high) {
            s = P256_N.subtract(s);
        }
        byte[] signature = rsToDer(rs[0], s);
        return concat(signed, new byte[] {(byte) signature.length}, signature);
    }

    /** (r, s) of a DER ECDSA signature with short-form lengths. */
    static BigInteger[] derToRs(byte[] der) {
        int rLength = der[3];
        BigInteger r = new BigInteger(1, Arrays.copyOfRange(der, 4, 4 + rLength));
        int sLength = der[5 + rLength];
        BigInteger s = new BigInteger(1, Arrays.copyOfRange(der, 6 + rLength, 6 + rLength + sLength));
        return new BigInteger[] {r, s};
    }

    static byte[] rsToDer(BigInteger r, BigInteger s) {
        byte[] rBytes = r.toByteArray(); // minimal, with a sign byte when the top bit is set
        byte[] sBytes = s.toByteArray();
        return concat(new byte[] {0x30, (byte) (4 + rBytes.length + sBytes.length), 0x02,
            (byte) rBytes.length}, rBytes, new byte[] {0x02, (byte) sBytes.length}, sBytes);
    }
}
