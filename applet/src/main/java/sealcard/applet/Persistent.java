package sealcard.applet;

import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
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
     * The user key (secp256k1); {@code null} when the platform refused custom curve
     * parameters at install. Usable only while {@link #userKeyPresent}.
     */
    ECPrivateKey userPrivateKey;
    boolean userKeyPresent;

    /** The user public key (uncompressed point) computed at personalization; length 0 = none. */
    final byte[] userPublicPoint;
    short userPublicPointLength;

    /** The issuer's public device authentication key (P-256), from the sealed blob. */
    final ECPublicKey deviceAuthKey;

    /** PIN and PUK; {@link #pinSet} once they hold values (both are set together). */
    final OwnerPIN pin;
    final OwnerPIN puk;
    boolean pinSet;

    /** PIN and PUK staged by PUT PIN PUK (FIG. 2), used by PERSONALIZE if the blob has none. */
    private final byte[] stagedPin;
    private final byte[] stagedPuk;
    private byte stagedPinLength;
    private byte stagedPukLength;

    /** Where PERSONALIZE receives the sealed blob (chunks of a chain land here). */
    final byte[] blobBuffer;

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
            userPrivateKey = privateKey;
        } catch (CryptoException e) {
            userPrivateKey = null;
        }
        userKeyPresent = false;
        userPublicPoint = new byte[Constants.EC_POINT_LENGTH];
        userPublicPointLength = 0;
        deviceAuthKey = newP256PublicKey();

        pin = new OwnerPIN(Constants.PIN_TRY_LIMIT, Constants.PIN_MAX_LENGTH);
        puk = new OwnerPIN(Constants.PUK_TRY_LIMIT, Constants.PUK_MAX_LENGTH);
        pinSet = false;
        stagedPin = new byte[Constants.PIN_MAX_LENGTH];
        stagedPuk = new byte[Constants.PUK_MAX_LENGTH];
        stagedPinLength = 0;
        stagedPukLength = 0;

        blobBuffer = new byte[SealedBlob.MAX_LENGTH];
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

    // ---- PIN and PUK -------------------------------------------------------------------

    /** Stages the bureau's PIN and PUK (PUT PIN PUK), replacing staged ones, atomically. */
    void stagePinPuk(byte[] source, short pinOffset, byte pinLength, short pukOffset,
            byte pukLength) {
        JCSystem.beginTransaction();
        Util.arrayCopy(source, pinOffset, stagedPin, (short) 0, pinLength);
        Util.arrayCopy(source, pukOffset, stagedPuk, (short) 0, pukLength);
        stagedPinLength = pinLength;
        stagedPukLength = pukLength;
        JCSystem.commitTransaction();
    }

    /** Sets PIN and PUK (both counters full); to be called inside a transaction. */
    private void setPinPukInTransaction(byte[] pinSource, short pinOffset, byte pinLength,
            byte[] pukSource, short pukOffset, byte pukLength) {
        pin.update(pinSource, pinOffset, pinLength);
        puk.update(pukSource, pukOffset, pukLength);
        pinSet = true;
    }

    /** CHANGE P1=01: the user's first PIN and PUK, in one transaction. */
    void setInitialPinPuk(byte[] source, short pinOffset, byte pinLength, short pukOffset,
            byte pukLength) {
        JCSystem.beginTransaction();
        setPinPukInTransaction(source, pinOffset, pinLength, source, pukOffset, pukLength);
        JCSystem.commitTransaction();
    }

    /** A new PIN with a full PIN counter (CHANGE, RESET RETRY COUNTER), atomically. */
    void changePin(byte[] source, short offset, byte length) {
        JCSystem.beginTransaction();
        pin.update(source, offset, length);
        JCSystem.commitTransaction();
    }

    /** Issuer-assisted reset: a new PIN, both counters full, in one transaction. */
    void resetPinByIssuer(byte[] source, short offset, byte length) {
        JCSystem.beginTransaction();
        pin.update(source, offset, length);
        puk.resetAndUnblock();
        pinSet = true;
        JCSystem.commitTransaction();
    }

    // ---- Personalization, use and termination --------------------------------------------

    /**
     * Completes PERSONALIZE in one transaction. The user private key and the device
     * authentication key objects were set by the caller just before (unusable until
     * {@link #userKeyPresent} is set here, and only written in state INITIALIZED, when no
     * user key exists yet). PIN and PUK: from the blob when {@code pinLength > 0}, else the
     * staged ones, else none. The user public key is stored when {@code withPoint} (the
     * platform could compute it), else DO_USER_PUBLIC_KEY stays absent.
     */
    void completePersonalization(boolean withPoint, byte[] point, short pointOffset,
            byte[] payload, short pinOffset, byte pinLength, short pukOffset, byte pukLength) {
        JCSystem.beginTransaction();
        if (withPoint) {
            Util.arrayCopy(point, pointOffset, userPublicPoint, (short) 0,
                    Constants.EC_POINT_LENGTH);
            userPublicPointLength = Constants.EC_POINT_LENGTH;
        }
        if (pinLength > 0) {
            setPinPukInTransaction(payload, pinOffset, pinLength, payload, pukOffset, pukLength);
        } else if (stagedPinLength > 0) {
            setPinPukInTransaction(stagedPin, (short) 0, stagedPinLength, stagedPuk, (short) 0,
                    stagedPukLength);
        }
        stagedPinLength = 0;
        stagedPukLength = 0;
        userKeyPresent = true;
        state = Constants.STATE_PERSONALIZED;
        JCSystem.commitTransaction();
        // The staged values are unreachable now (lengths 0); wipe their bytes too.
        Util.arrayFillNonAtomic(stagedPin, (short) 0, (short) stagedPin.length, (byte) 0);
        Util.arrayFillNonAtomic(stagedPuk, (short) 0, (short) stagedPuk.length, (byte) 0);
    }

    /** Makes the user key unusable for good (blocked PUK): flag first, then the key. */
    void wipeUserKey() {
        JCSystem.beginTransaction();
        userKeyPresent = false;
        JCSystem.commitTransaction();
        if (userPrivateKey != null) {
            userPrivateKey.clearKey();
        }
    }

    /** ISSUER COMMAND terminate: user key unusable, state terminated, in one transaction. */
    void terminate() {
        JCSystem.beginTransaction();
        userKeyPresent = false;
        state = Constants.STATE_TERMINATED;
        JCSystem.commitTransaction();
        if (userPrivateKey != null) {
            userPrivateKey.clearKey();
        }
    }
}
