package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.Signature;

/**
 * Step A, the card provider's commands (state {@code STATE_BLANK} only; the dispatcher
 * enforces the state): key generation, serial, issuer key, certificates, signed device key,
 * closing. Every command validates everything before it writes anything.
 */
final class InitializationCommands {

    /** Scratch offset of the point check's work area, just after the received point. */
    private static final short POINT_CHECK_WORK = Constants.EC_POINT_LENGTH;

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final ResponseSender sender;
    private final ChainedInput chain;

    InitializationCommands(Persistent persistent, Transients transients, Crypto crypto,
            ResponseSender sender, ChainedInput chain) {
        this.persistent = persistent;
        this.transients = transients;
        this.crypto = crypto;
        this.sender = sender;
        this.chain = chain;
    }

    /** GENERATE KEY PAIR: {@code 80 46 P1 00}; answers the public key. */
    void generateKeyPair(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        byte key = buffer[ISO7816.OFFSET_P1];
        if (buffer[ISO7816.OFFSET_P2] != 0
                || (key != Constants.KEY_DEVICE && key != Constants.KEY_ISSUER_AUTH)) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        IncomingData.requireNoData(apdu);
        persistent.discardKey(key);
        byte[] scratch = transients.scratch;
        short length;
        if (key == Constants.KEY_DEVICE) {
            persistent.generateDeviceKey();
            length = PublicKeys.writeRsaTlv(persistent.devicePublicKey, scratch, (short) 0);
        } else {
            persistent.generateIssuerAuthKey();
            length = PublicKeys.writeEcPoint(persistent.issuerAuthPublicKey, scratch, (short) 0);
        }
        sender.sendScratch(apdu, length);
    }

    /** SET SERIAL: {@code 80 30 P1 00 [data]}; the random variant answers the serial. */
    void setSerial(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        byte mode = buffer[ISO7816.OFFSET_P1];
        if (buffer[ISO7816.OFFSET_P2] != 0
                || (mode != Constants.SERIAL_GIVEN && mode != Constants.SERIAL_RANDOM)) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        byte[] scratch = transients.scratch;
        if (mode == Constants.SERIAL_GIVEN) {
            short length = IncomingData.receive(apdu, scratch, (short) 0,
                    Constants.SERIAL_MAX_LENGTH, Constants.SW_WRONG_LENGTH);
            if (length < Constants.SERIAL_MIN_LENGTH) {
                ISOException.throwIt(Constants.SW_WRONG_LENGTH);
            }
            persistent.setSerial(scratch, (short) 0, length);
            return;
        }
        IncomingData.requireNoData(apdu);
        crypto.random().generateData(scratch, (short) 0, Constants.RANDOM_SERIAL_LENGTH);
        persistent.setSerial(scratch, (short) 0, Constants.RANDOM_SERIAL_LENGTH);
        sender.sendScratch(apdu, Constants.RANDOM_SERIAL_LENGTH);
    }

    /**
     * PUT ISSUER KEY: {@code 80 32 00 00 41 <point>}; a point that is not on P-256 answers
     * {@code 6A80} and changes nothing.
     */
    void putIssuerKey(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2Zero(buffer);
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0,
                Constants.EC_POINT_LENGTH, Constants.SW_WRONG_LENGTH);
        if (length != Constants.EC_POINT_LENGTH) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        // The platform's key object need not check the curve (jCardSim's setW does not):
        // the same ECDH check as for the device authentication key in PERSONALIZE.
        if (scratch[0] != Constants.EC_POINT_UNCOMPRESSED
                || !crypto.isP256Point(scratch, (short) 0, scratch, POINT_CHECK_WORK)) {
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        try {
            persistent.putIssuerKey(scratch, (short) 0);
        } catch (CryptoException e) {
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
    }

    /**
     * PUT CERTIFICATE: {@code 80|90 34 P1 00 Lc <chunk>}. Chunks are written to the slot's
     * spare buffer; the last one checks the DER framing and switches the slot atomically.
     */
    void putCertificate(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        byte which = buffer[ISO7816.OFFSET_P1];
        if (buffer[ISO7816.OFFSET_P2] != 0 || (which != Constants.CERT_DEVICE_KEY
                && which != Constants.CERT_ISSUER_AUTH_KEY)) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        byte key = which == Constants.CERT_DEVICE_KEY ? Constants.KEY_DEVICE
                : Constants.KEY_ISSUER_AUTH;
        if (!persistent.isKeyPresent(key)) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        CertificateSlot slot = persistent.certificate(which);
        byte[] spare = slot.spare();
        short total = chain.receive(apdu, spare, Constants.MAX_CERT_LENGTH,
                Constants.SW_NOT_ENOUGH_MEMORY);
        if (total == ChainedInput.MORE_TO_COME) {
            return;
        }
        if (!Der.isSingleSequence(spare, (short) 0, total)) {
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        slot.makeSpareCurrent(total);
    }

    /**
     * SIGN DEVICE KEY: {@code 80 36 00 00}; ECDSA-SHA256 with the issuer authentication key
     * over {@code "SCDK" || 01 || len(serial) || serial || modulus || len(e) || e}.
     */
    void signDeviceKey(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2Zero(buffer);
        IncomingData.requireNoData(apdu);
        if (!persistent.deviceKeyPresent || !persistent.issuerAuthKeyPresent
                || persistent.serialLength == 0) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        byte[] scratch = transients.scratch;
        Signature signature = crypto.ecdsaSha256();
        signature.init(persistent.issuerAuthPrivateKey, Signature.MODE_SIGN);

        short at = Util.setShort(scratch, (short) 0, Constants.SIGNED_DEVICE_KEY_MAGIC_HIGH);
        at = Util.setShort(scratch, at, Constants.SIGNED_DEVICE_KEY_MAGIC_LOW);
        scratch[at++] = Constants.SIGNED_DEVICE_KEY_FORMAT_VERSION;
        scratch[at++] = (byte) persistent.serialLength;
        at = Util.arrayCopyNonAtomic(persistent.serial, (short) 0, scratch, at,
                persistent.serialLength);
        signature.update(scratch, (short) 0, at);

        PublicKeys.writeModulus(persistent.devicePublicKey, scratch, (short) 0);
        signature.update(scratch, (short) 0, Constants.RSA_MODULUS_LENGTH);

        short exponentLength = PublicKeys.writeExponent(persistent.devicePublicKey, scratch,
                (short) 1);
        scratch[0] = (byte) exponentLength;
        short signatureLength = signature.sign(scratch, (short) 0, (short) (exponentLength + 1),
                scratch, Transients.SCRATCH_SIGNATURE_OFFSET);
        if (signatureLength > Persistent.MAX_ECDSA_SIGNATURE_LENGTH) {
            ISOException.throwIt(Constants.SW_UNKNOWN);
        }
        persistent.setSignedDeviceKey(scratch, Transients.SCRATCH_SIGNATURE_OFFSET,
                signatureLength);
        sender.send(apdu, scratch, Transients.SCRATCH_SIGNATURE_OFFSET, signatureLength);
    }

    /** CLOSE INITIALIZATION: {@code 80 3E 00 00}; blank to initialized, for good. */
    void closeInitialization(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2Zero(buffer);
        IncomingData.requireNoData(apdu);
        boolean deviceKeyCertified = persistent.deviceKeyCertificate.isPresent()
                || persistent.signedDeviceKeyLength != 0;
        if (!persistent.deviceKeyPresent || !persistent.issuerAuthKeyPresent
                || persistent.serialLength == 0 || !persistent.isIssuerKeyPresent()
                || !persistent.issuerAuthKeyCertificate.isPresent() || !deviceKeyCertified) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        persistent.state = Constants.STATE_INITIALIZED;
    }

    private static void requireP1P2Zero(byte[] buffer) {
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
    }
}
