package sealcard.applet;

import javacard.security.CryptoException;
import javacard.framework.Util;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyAgreement;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.MessageDigest;
import javacard.security.RandomData;
import javacard.security.Signature;
import javacardx.crypto.Cipher;

/**
 * The cryptographic engines, allocated at install, and the probe of optional platform
 * algorithms that yields the capability bitmask. Each probe runs inside
 * {@code try/catch (CryptoException)}: a platform without the algorithm simply leaves its
 * bit clear.
 */
final class Crypto {

    /**
     * {@code RandomData.ALG_TRNG} (value 3) of the JavaCard 3.0.5 API, spelled out so the
     * source still compiles against a 3.0.4 SDK; a 3.0.4 platform answers
     * {@code NO_SUCH_ALGORITHM} and the applet falls back to {@code ALG_SECURE_RANDOM}.
     */
    private static final byte RANDOM_ALG_TRNG = (byte) 3;

    /**
     * {@code KeyAgreement.ALG_EC_SVDP_DH_PLAIN_XY} (value 6) of the JavaCard 3.0.5 API,
     * spelled out for the same reason: with the generator G as the peer it gives d*G, the
     * user public key.
     */
    private static final byte KEY_AGREEMENT_DH_PLAIN_XY = (byte) 6;

    /**
     * {@code Cipher.PAD_PKCS1_OAEP_SHA256} (value 14) of the JavaCard 3.0.5 API, spelled out
     * for the same reason: a 3.0.4 platform answers {@code NO_SUCH_ALGORITHM} and the applet
     * decodes OAEP itself over raw RSA ({@code OaepDecoder}).
     */
    private static final byte CIPHER_PAD_OAEP_SHA256 = (byte) 14;

    /** Size of the all-zero hash signed by the precomputed-hash probe. */
    private static final short PROBE_HASH_LENGTH = (short) 32;

    private RandomData random;
    private Signature ecdsaSha256;
    private Cipher oaepSha256;
    private final Cipher rsaNoPad;
    private final MessageDigest sha256;
    private KeyAgreement publicKeyDerivation;
    private final KeyAgreement pointCheck;
    private final KeyPair pointCheckPair;
    /** The throw-away key's own public point: a point the check always accepts. */
    private final byte[] goodPoint;
    private short capabilities;

    /**
     * Allocates the engines and probes the platform. Uses (and then clears) the issuer
     * authentication key pair of {@code persistent} for the precomputed-hash probe, and
     * the scratch buffer of {@code transients}.
     */
    Crypto(Persistent persistent, Transients transients) {
        capabilities = Constants.CAP_EXTENDED_LENGTH;

        try {
            random = RandomData.getInstance(RANDOM_ALG_TRNG);
            capabilities |= Constants.CAP_TRNG;
        } catch (CryptoException e) {
            random = RandomData.getInstance(RandomData.ALG_SECURE_RANDOM);
        }

        try {
            // Some platforms (jCardSim 3.0.6.0) return null here instead of throwing.
            oaepSha256 = Cipher.getInstance(Cipher.CIPHER_RSA, CIPHER_PAD_OAEP_SHA256, false);
        } catch (CryptoException e) {
            oaepSha256 = null;
        }
        if (oaepSha256 != null) {
            capabilities |= Constants.CAP_RSA_OAEP_SHA256;
        }

        ecdsaSha256 = Signature.getInstance(Signature.ALG_ECDSA_SHA_256, false);
        if (probePrecomputedHash(persistent, transients.scratch)) {
            capabilities |= Constants.CAP_ECDSA_PRECOMPUTED;
        }

        if (persistent.userPrivateKey != null) {
            capabilities |= Constants.CAP_SECP256K1;
        }

        rsaNoPad = Cipher.getInstance(Cipher.ALG_RSA_NOPAD, false);
        sha256 = MessageDigest.getInstance(MessageDigest.ALG_SHA_256, false);
        try {
            publicKeyDerivation = KeyAgreement.getInstance(KEY_AGREEMENT_DH_PLAIN_XY, false);
        } catch (CryptoException e) {
            publicKeyDerivation = null;
        }
        if (publicKeyDerivation != null) {
            capabilities |= Constants.CAP_EC_PLAIN_XY;
        }
        pointCheck = KeyAgreement.getInstance(KeyAgreement.ALG_EC_SVDP_DH_PLAIN, false);
        ECPrivateKey checkPrivate = (ECPrivateKey) KeyBuilder.buildKey(
                KeyBuilder.TYPE_EC_FP_PRIVATE, KeyBuilder.LENGTH_EC_FP_256, false);
        Curves.setP256(checkPrivate);
        ECPublicKey checkPublic = (ECPublicKey)
                KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256,
                        false);
        Curves.setP256(checkPublic);
        pointCheckPair = new KeyPair(checkPublic, checkPrivate);
        pointCheckPair.genKeyPair();
        pointCheck.init(checkPrivate);
        goodPoint = new byte[Constants.EC_POINT_LENGTH];
        checkPublic.getW(goodPoint, (short) 0);
    }

    private boolean probePrecomputedHash(Persistent persistent, byte[] scratch) {
        boolean supported;
        try {
            persistent.generateIssuerAuthKey();
            ecdsaSha256.init(persistent.issuerAuthPrivateKey, Signature.MODE_SIGN);
            ecdsaSha256.signPreComputedHash(scratch, (short) 0, PROBE_HASH_LENGTH, scratch,
                    PROBE_HASH_LENGTH);
            supported = true;
        } catch (CryptoException e) {
            supported = false;
        }
        persistent.issuerAuthKeyPair.getPrivate().clearKey();
        persistent.issuerAuthKeyPair.getPublic().clearKey();
        persistent.issuerAuthKeyPresent = false;
        return supported;
    }

    /** The random generator: the TRNG when {@code CAP_TRNG}, else ALG_SECURE_RANDOM. */
    RandomData random() {
        return random;
    }

    /** ECDSA with SHA-256 (also used for {@code signPreComputedHash} when available). */
    Signature ecdsaSha256() {
        return ecdsaSha256;
    }

    /** Native RSA-OAEP (SHA-256, MGF1-SHA-256), or {@code null} without {@code CAP_RSA_OAEP_SHA256}. */
    Cipher oaepSha256() {
        return oaepSha256;
    }

    /** Raw RSA (no padding), for the applet's own OAEP decoding. */
    Cipher rsaNoPad() {
        return rsaNoPad;
    }

    /** SHA-256 (OAEP's hash and MGF1). */
    MessageDigest sha256() {
        return sha256;
    }

    /**
     * Writes d*G (uncompressed, {@code EC_POINT_LENGTH} bytes) for the secp256k1 private
     * key at {@code out[offset]}, using {@code ALG_EC_SVDP_DH_PLAIN_XY} with the generator
     * as the peer point.
     *
     * @return false when the platform cannot (no such algorithm, or another output form)
     */
    boolean derivePublicKey(ECPrivateKey privateKey, byte[] out, short offset) {
        if (publicKeyDerivation == null) {
            return false;
        }
        try {
            publicKeyDerivation.init(privateKey);
            short generatorOffset = (short) (offset + Constants.EC_POINT_LENGTH);
            Curves.writeSecp256k1Generator(out, generatorOffset);
            short length = publicKeyDerivation.generateSecret(out, generatorOffset,
                    Constants.EC_POINT_LENGTH, out, offset);
            return length == Constants.EC_POINT_LENGTH
                    && out[offset] == Constants.EC_POINT_UNCOMPRESSED;
        } catch (CryptoException e) {
            return false;
        }
    }

    /**
     * Whether the 65 bytes at {@code offset} are an uncompressed point of P-256, judged by
     * the platform's ECDH (which must refuse points off the curve) with a throw-away key
     * generated at install. Writes up to 32 bytes of scratch at {@code work}, then wipes
     * them.
     *
     * <p>The same work whatever the bytes: the platform decodes and checks a point before
     * its multiplication, in a time that depends on the bytes (a bad prefix is refused at
     * once, a compressed one costs a square root, an off-curve one skips the multiplication).
     * So the platform always sees the {@code 04} prefix (the real one is put back and judged
     * apart), and a refused point is followed by the same multiplication with a point that
     * is known to be good. Measured by the assurance suite's timing test (docs/assurance.md).
     */
    boolean isP256Point(byte[] point, short offset, byte[] work, short workOffset) {
        byte prefix = point[offset];
        point[offset] = Constants.EC_POINT_UNCOMPRESSED;
        boolean valid = multiplies(point, offset, work, workOffset);
        point[offset] = prefix;
        if (!valid) {
            multiplies(goodPoint, (short) 0, work, workOffset);
        }
        Util.arrayFillNonAtomic(work, workOffset, Curves.FIELD_LENGTH, (byte) 0);
        return valid & prefix == Constants.EC_POINT_UNCOMPRESSED;
    }

    /** ECDH of the throw-away key with the point: false when the platform refuses it. */
    private boolean multiplies(byte[] point, short offset, byte[] work, short workOffset) {
        try {
            pointCheck.generateSecret(point, offset, Constants.EC_POINT_LENGTH, work,
                    workOffset);
            return true;
        } catch (CryptoException e) {
            return false;
        } catch (RuntimeException e) {
            // jCardSim lets the library's IllegalArgumentException through.
            return false;
        }
    }

    /** The capability bitmask ({@code Constants.CAP_*}). */
    short capabilities() {
        return capabilities;
    }
}
