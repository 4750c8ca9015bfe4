package sealcard.applet;

import javacard.security.CryptoException;
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

    /** Size of the all-zero hash signed by the precomputed-hash probe. */
    private static final short PROBE_HASH_LENGTH = (short) 32;

    private RandomData random;
    private Signature ecdsaSha256;
    private Cipher oaepSha256;
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
            oaepSha256 = Cipher.getInstance(Cipher.CIPHER_RSA, Cipher.PAD_PKCS1_OAEP_SHA256,
                    false);
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

    /** The capability bitmask ({@code Constants.CAP_*}). */
    short capabilities() {
        return capabilities;
    }
}
