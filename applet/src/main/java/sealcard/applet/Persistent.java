package sealcard.applet;

import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.KeyBuilder;
import javacard.security.KeyPair;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RSAPublicKey;

/**
 * All EEPROM state of the applet, allocated once in the constructor (at install), and
 * every update that touches more than one field, each as one transaction or one atomic
 * switch. Command classes read fields directly and change them only through the methods
 * here.
 */
final class Persistent {

    /** Longest DER ECDSA P-256 signature: 30 46 (02 21 00 r) (02 21 00 s). */
    static final short MAX_ECDSA_SIGNATURE_LENGTH = (short) 72;

    private static final byte NONE = (byte) 0;
    private static final byte FIRST = (byte) 1;
    private static final byte SECOND = (byte) 2;

    /** Public exponent of the device key: 65537. */
    private static final byte[] RSA_EXPONENT = {(byte) 0x01, (byte) 0x00, (byte) 0x01};

    /** Life-cycle state, one of {@code Constants.STATE_*}. */
    byte state;

    /** The serial ({@link #serialLength} bytes; 0 = not set). */
    final byte[] serial;
    short serialLength;

    /** Device key pair, RSA-2048 CRT. */
    final KeyPair deviceKeyPair;
    final RSAPublicKey devicePublicKey;
    boolean deviceKeyPresent;

    /** Issuer authentication key pair, EC P-256. */
    final KeyPair issuerAuthKeyPair;
    final ECPublicKey issuerAuthPublicKey;
    final ECPrivateKey issuerAuthPrivateKey;
    boolean issuerAuthKeyPresent;

    /** The issuer's public key, double-buffered: {@link #issuerKeyActive} names the current. */
    private final ECPublicKey issuerKeyFirst;
    private final ECPublicKey issuerKeySecond;
    private byte issuerKeyActive;

    /** Root-signed certificates. */
    final CertificateSlot deviceKeyCertificate;
    final CertificateSlot issuerAuthKeyCertificate;

    /** The signed device key (DER ECDSA signature; length 0 = none). */
    final byte[] signedDeviceKey;
    short signedDeviceKeyLength;

    /**
     * secp256k1 key objects for the user key (personalization issue); {@code null} when
     * the platform refused custom curve parameters at install.
     */
    ECPrivateKey userPrivateKey;
    ECPublicKey userPublicKey;

    Persistent() {
        state = Constants.STATE_BLANK;
        serial = new byte[Constants.SERIAL_MAX_LENGTH];
        serialLength = 0;

        devicePublicKey = (RSAPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_RSA_PUBLIC,
                KeyBuilder.LENGTH_RSA_2048, false);
        RSAPrivateCrtKey devicePrivateKey = (RSAPrivateCrtKey) KeyBuilder.buildKey(
                KeyBuilder.TYPE_RSA_CRT_PRIVATE, KeyBuilder.LENGTH_RSA_2048, false);
        deviceKeyPair = new KeyPair(devicePublicKey, devicePrivateKey);
        deviceKeyPresent = false;

        issuerAuthPublicKey = newP256PublicKey();
        issuerAuthPrivateKey = (ECPrivateKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PRIVATE,
                KeyBuilder.LENGTH_EC_FP_256, false);
        Curves.setP256(issuerAuthPrivateKey);
        issuerAuthKeyPair = new KeyPair(issuerAuthPublicKey, issuerAuthPrivateKey);
        issuerAuthKeyPresent = false;

        issuerKeyFirst = newP256PublicKey();
        issuerKeySecond = newP256PublicKey();
        issuerKeyActive = NONE;

        deviceKeyCertificate = new CertificateSlot();
        issuerAuthKeyCertificate = new CertificateSlot();

        signedDeviceKey = new byte[MAX_ECDSA_SIGNATURE_LENGTH];
        signedDeviceKeyLength = 0;

        try {
            ECPrivateKey privateKey = (ECPrivateKey) KeyBuilder.buildKey(
                    KeyBuilder.TYPE_EC_FP_PRIVATE, KeyBuilder.LENGTH_EC_FP_256, false);
            Curves.setSecp256k1(privateKey);
            ECPublicKey publicKey = (ECPublicKey) KeyBuilder.buildKey(
                    KeyBuilder.TYPE_EC_FP_PUBLIC, KeyBuilder.LENGTH_EC_FP_256, false);
            Curves.setSecp256k1(publicKey);
            userPrivateKey = privateKey;
            userPublicKey = publicKey;
        } catch (CryptoException e) {
            userPrivateKey = null;
            userPublicKey = null;
        }
    }

    private static ECPublicKey newP256PublicKey() {
        ECPublicKey key = (ECPublicKey) KeyBuilder.buildKey(KeyBuilder.TYPE_EC_FP_PUBLIC,
                KeyBuilder.LENGTH_EC_FP_256, false);
        Curves.setP256(key);
        return key;
    }

    // ---- Keys generated on the card ----------------------------------------------------

    /**
     * Before (re)generating a key pair: marks it absent and discards what was bound to it
     * (its certificate and the signed device key), in one transaction. A tear during the
     * generation that follows leaves the key absent.
     */
    void discardKey(byte keyReference) {
        JCSystem.beginTransaction();
        if (keyReference == Constants.KEY_DEVICE) {
            deviceKeyPresent = false;
            deviceKeyCertificate.clearInTransaction();
        } else {
            issuerAuthKeyPresent = false;
            issuerAuthKeyCertificate.clearInTransaction();
        }
        signedDeviceKeyLength = 0;
        JCSystem.commitTransaction();
    }

    /** Generates the device key pair (RSA-2048, e = 65537); call {@link #discardKey} first. */
    void generateDeviceKey() {
        devicePublicKey.setExponent(RSA_EXPONENT, (short) 0, (short) RSA_EXPONENT.length);
        deviceKeyPair.genKeyPair();
        deviceKeyPresent = true;
    }

    /** Generates the issuer authentication key pair (P-256); call {@link #discardKey} first. */
    void generateIssuerAuthKey() {
        Curves.setP256(issuerAuthPublicKey);
        Curves.setP256(issuerAuthPrivateKey);
        issuerAuthKeyPair.genKeyPair();
        issuerAuthKeyPresent = true;
    }

    /** Whether the key pair named by {@code keyReference} ({@code KEY_*}) was generated. */
    boolean isKeyPresent(byte keyReference) {
        return keyReference == Constants.KEY_DEVICE ? deviceKeyPresent : issuerAuthKeyPresent;
    }

    // ---- Serial ------------------------------------------------------------------------

    /** Replaces the serial and discards the signed device key (it covers the serial). */
    void setSerial(byte[] source, short offset, short length) {
        JCSystem.beginTransaction();
        Util.arrayCopy(source, offset, serial, (short) 0, length);
        serialLength = length;
        signedDeviceKeyLength = 0;
        JCSystem.commitTransaction();
    }

    // ---- Issuer key --------------------------------------------------------------------

    /** Whether the issuer's public key was injected. */
    boolean isIssuerKeyPresent() {
        return issuerKeyActive != NONE;
    }

    /** The issuer's public key (only when {@link #isIssuerKeyPresent()}). */
    ECPublicKey issuerKey() {
        return issuerKeyActive == SECOND ? issuerKeySecond : issuerKeyFirst;
    }

    /**
     * Writes the point to the spare key object and, only if the platform accepted it,
     * makes that object current with one byte write.
     *
     * @throws CryptoException when the key object refuses the point (nothing changed)
     */
    void putIssuerKey(byte[] point, short offset) {
        byte next = issuerKeyActive == FIRST ? SECOND : FIRST;
        ECPublicKey spare = next == FIRST ? issuerKeyFirst : issuerKeySecond;
        spare.clearKey();
        Curves.setP256(spare);
        spare.setW(point, offset, Constants.EC_POINT_LENGTH);
        issuerKeyActive = next;
    }

    // ---- Signed device key -------------------------------------------------------------

    /** Stores the signed device key, atomically. */
    void setSignedDeviceKey(byte[] source, short offset, short length) {
        JCSystem.beginTransaction();
        Util.arrayCopy(source, offset, signedDeviceKey, (short) 0, length);
        signedDeviceKeyLength = length;
        JCSystem.commitTransaction();
    }

    // ---- Certificates ------------------------------------------------------------------

    /** The certificate slot named by {@code certReference} ({@code CERT_*}). */
    CertificateSlot certificate(byte certReference) {
        return certReference == Constants.CERT_DEVICE_KEY ? deviceKeyCertificate
                : issuerAuthKeyCertificate;
    }
}
