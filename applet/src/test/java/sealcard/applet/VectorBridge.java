package sealcard.applet;

import java.util.Arrays;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.PrivateKey;
import javacard.security.Signature;

/**
 * Test-only door to the applet's own crypto code (package-private classes), for suite 5's
 * public test vectors: the OAEP decoder, the issuer-signature check as PERSONALIZE does it,
 * and the low-S normalization of SIGN HASH. Runs the applet's classes as compiled, on
 * jCardSim's engines.
 */
public final class VectorBridge {

    private final Crypto crypto;
    private final OaepDecoder decoder;
    private final byte[] out = new byte[Constants.RSA_MODULUS_LENGTH + OaepDecoder.WORK_LENGTH
            + Constants.RSA_MODULUS_LENGTH];
    private final ECPublicKey issuerKey;

    public VectorBridge() {
        crypto = new Crypto(new Persistent(), new Transients());
        decoder = new OaepDecoder(crypto);
        issuerKey = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC,
                KeyBuilder.LENGTH_EC_FP_256, false);
    }

    /** Whether the platform decodes OAEP itself (then the applet's decoder is not used). */
    public boolean platformOaep() {
        return crypto.oaepSha256() != null;
    }

    /** The applet's OAEP decoding of a 256-byte ciphertext: the message, or null if refused. */
    public byte[] oaepDecrypt(PrivateKey key, byte[] ciphertext) {
        short offset = decoder.decrypt(key, ciphertext, (short) 0, out, (short) 0);
        return decoder.isValid() ? Arrays.copyOfRange(out, offset, Constants.RSA_MODULUS_LENGTH)
                : null;
    }

    /**
     * ECDSA P-256 SHA-256 as PERSONALIZE checks the issuer signature: the point through PUT
     * ISSUER KEY's check and key object, the blob framing's signature length limits, the
     * platform's verifier.
     */
    public boolean verifyP256(byte[] point, byte[] message, byte[] der) {
        if (der.length < SealedBlob.SIGNATURE_MIN_LENGTH
                || der.length > SealedBlob.SIGNATURE_MAX_LENGTH
                || point.length != Constants.EC_POINT_LENGTH) {
            return false;
        }
        byte[] work = new byte[Constants.EC_POINT_LENGTH + 32];
        System.arraycopy(point, 0, work, 0, point.length);
        if (!crypto.isP256Point(work, (short) 0, work, Constants.EC_POINT_LENGTH)) {
            return false;
        }
        issuerKey.clearKey();
        Curves.setP256(issuerKey);
        issuerKey.setW(point, (short) 0, Constants.EC_POINT_LENGTH);
        Signature verifier = crypto.ecdsaSha256();
        try {
            verifier.init(issuerKey, Signature.MODE_VERIFY);
            return verifier.verify(message, (short) 0, (short) message.length, der, (short) 0,
                    (short) der.length);
        } catch (javacard.security.CryptoException e) {
            return false;
        }
    }

    /** SIGN HASH's low-S normalization of a DER secp256k1 signature. */
    public static byte[] lowS(byte[] der) {
        byte[] buffer = Arrays.copyOf(der, der.length + 2);
        byte[] work = new byte[Curves.FIELD_LENGTH];
        short length = LowS.normalize(buffer, (short) 0, (short) der.length, work, (short) 0);
        return Arrays.copyOf(buffer, length);
    }
}
