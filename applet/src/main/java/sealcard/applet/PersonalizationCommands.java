package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.PrivateKey;
import javacard.security.Signature;

/**
 * Step Q, in state {@code STATE_INITIALIZED} (the dispatcher enforces the state): PUT PIN
 * PUK (the bureau's PIN and PUK, FIG. 2) and PERSONALIZE (the sealed blob). PERSONALIZE
 * checks in the order of docs/sealed-blob.md (framing, serial, issuer signature, then
 * decryption, OAEP and the payload as one failure class) and only then writes, in one
 * transaction.
 */
final class PersonalizationCommands {

    /** Payload layout (docs/sealed-blob.md): fixed TLVs first, optional PIN and PUK. */
    private static final short USER_KEY_TLV = (short) 0;
    private static final short USER_KEY_VALUE = (short) 2;
    private static final short USER_KEY_LENGTH = (short) 32;
    private static final short AUTH_KEY_TLV = (short) 34;
    private static final short AUTH_KEY_VALUE = (short) 36;
    /** Payload without PIN and PUK: 2 + 32 + 2 + 65. */
    private static final short REQUIRED_LENGTH = (short) 101;
    private static final short PIN_TLV = REQUIRED_LENGTH;
    /** Index mask that keeps reads of a malformed payload inside the buffer. */
    private static final short SMALL_LENGTH_MASK = (short) 0x0F;
    private static final short ONE = (short) 1;

    /** Scratch layout during PERSONALIZE: EM at 0, OAEP work behind it, then key output. */
    private static final short EM_OFFSET = (short) 0;
    private static final short PUBLIC_KEY_OFFSET = (short) 320;
    private static final short POINT_CHECK_WORK = (short) 256;

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final ChainedInput chain;
    private final OaepDecoder oaep;

    /** Where {@link #checkPayload} leaves the PIN and PUK (offsets in scratch, lengths). */
    private short pinOffset;
    private byte pinLength;
    private short pukOffset;
    private byte pukLength;

    PersonalizationCommands(Persistent persistent, Transients transients, Crypto crypto,
            ChainedInput chain) {
        this.persistent = persistent;
        this.transients = transients;
        this.crypto = crypto;
        this.chain = chain;
        this.oaep = new OaepDecoder(crypto);
    }

    /** PUT PIN PUK: {@code 80 38 00 00 Lc <03 len PIN 04 len PUK>}. */
    void putPinPuk(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2Zero(buffer);
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0,
                (short) (2 * PinFormat.HEADER + Constants.PIN_MAX_LENGTH
                        + Constants.PUK_MAX_LENGTH), Constants.SW_WRONG_DATA);
        if (!PinFormat.isPair(scratch, (short) 0, length, Constants.TAG_PIN, Constants.TAG_PUK)) {
            wipeScratch();
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        persistent.stagePinPuk(scratch, PinFormat.FIRST_VALUE,
                PinFormat.firstLength(scratch, (short) 0),
                PinFormat.secondValue(scratch, (short) 0),
                PinFormat.secondLength(scratch, (short) 0));
        wipeScratch();
    }

    /**
     * PERSONALIZE: {@code 80|90 50 00 00 Lc <sealed blob>}. Chunks land in the EEPROM blob
     * buffer (only a staging area: nothing reads it outside this command).
     */
    void personalize(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2Zero(buffer);
        byte[] blob = persistent.blobBuffer;
        short total = chain.receive(apdu, blob, SealedBlob.MAX_LENGTH, Constants.SW_WRONG_DATA);
        if (total == ChainedInput.MORE_TO_COME) {
            return;
        }

        if (!SealedBlob.isWellFramed(blob, total)) {
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        if (!SealedBlob.namesSerial(blob, persistent.serial, persistent.serialLength)) {
            ISOException.throwIt(Constants.SW_REFERENCED_DATA_NOT_FOUND);
        }
        if (!issuerSigned(blob) || !lowS(blob)) {
            ISOException.throwIt(Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        if (persistent.userPrivateKey == null) {
            // The platform refused secp256k1 at install: no user key can ever be held.
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }

        byte[] scratch = transients.scratch;
        PrivateKey deviceKey = persistent.deviceKeyPair.getPrivate();
        short message = oaep.decrypt(deviceKey, blob, SealedBlob.ciphertextOffset(blob),
                scratch, EM_OFFSET);
        short bad = oaep.isValid() ? 0 : ONE;
        bad |= checkPayload(scratch, message,
                (short) (EM_OFFSET + Constants.RSA_MODULUS_LENGTH - message));
        if (bad != 0) {
            wipeScratch();
            ISOException.throwIt(Constants.SW_DATA_INVALID);
        }
        store(scratch, message);
    }

    /** ECDSA P-256 SHA-256 over the signed part, under the injected issuer key. */
    private boolean issuerSigned(byte[] blob) {
        Signature verifier = crypto.ecdsaSha256();
        try {
            verifier.init(persistent.issuerKey(), Signature.MODE_VERIFY);
            return verifier.verify(blob, (short) 0, SealedBlob.signedLength(blob), blob,
                    SealedBlob.signatureOffset(blob), SealedBlob.signatureLength(blob));
        } catch (CryptoException e) {
            return false;
        }
    }

    /**
     * Whether the issuer signature's s is at most n/2 (P-256). Its high-S twin (r, n - s)
     * verifies as well; taking only the low one makes a blob's bytes unique
     * (docs/sealed-blob.md). Uses the first 32 bytes of scratch, wiped after.
     */
    private boolean lowS(byte[] blob) {
        byte[] scratch = transients.scratch;
        boolean low = Der.copySignatureS(blob, SealedBlob.signatureOffset(blob),
                SealedBlob.signatureLength(blob), scratch, (short) 0, Curves.FIELD_LENGTH)
                && !Curves.isP256HighS(scratch, (short) 0);
        Util.arrayFillNonAtomic(scratch, (short) 0, Curves.FIELD_LENGTH, (byte) 0);
        return low;
    }

    /**
     * Checks the payload TLVs at {@code p} ({@code length} bytes): user key TLV with a
     * valid secp256k1 scalar, device authentication key TLV with a P-256 point, then
     * either nothing or PIN and PUK TLVs of digits. Looks at the same fields whatever it
     * finds (indices masked so a garbage payload stays inside the buffer) and records
     * where the PIN and PUK are.
     *
     * @return 0 when valid, else non-zero
     */
    private short checkPayload(byte[] s, short p, short length) {
        short bad = 0;
        bad |= differs(s[(short) (p + USER_KEY_TLV)], Constants.PT_USER_KEY);
        bad |= differs(s[(short) (p + USER_KEY_TLV + 1)], (byte) USER_KEY_LENGTH);
        bad |= differs(s[(short) (p + AUTH_KEY_TLV)], Constants.PT_DEVICE_AUTH_KEY);
        bad |= differs(s[(short) (p + AUTH_KEY_TLV + 1)], (byte) Constants.EC_POINT_LENGTH);
        bad |= Curves.isSecp256k1Scalar(s, (short) (p + USER_KEY_VALUE)) ? 0 : ONE;
        bad |= crypto.isP256Point(s, (short) (p + AUTH_KEY_VALUE), s, POINT_CHECK_WORK) ? 0
                : ONE;

        // Optional PIN and PUK: read at masked positions whatever the length says.
        short pinLen = (short) (s[(short) (p + PIN_TLV + 1)] & SMALL_LENGTH_MASK);
        short pukTlv = (short) (p + PIN_TLV + PinFormat.HEADER + pinLen);
        short pukLen = (short) (s[(short) (pukTlv + 1)] & SMALL_LENGTH_MASK);
        short pinValue = (short) (p + PIN_TLV + PinFormat.HEADER);
        short pukValue = (short) (pukTlv + PinFormat.HEADER);
        boolean pinOk = s[(short) (p + PIN_TLV)] == Constants.PT_PIN
                & s[(short) (p + PIN_TLV + 1)] == pinLen
                & PinFormat.isSecret(Constants.TAG_PIN, s, pinValue, pinLen)
                & s[pukTlv] == Constants.PT_PUK
                & s[(short) (pukTlv + 1)] == pukLen
                & PinFormat.isSecret(Constants.TAG_PUK, s, pukValue, pukLen)
                & length == (short) (REQUIRED_LENGTH + 2 * PinFormat.HEADER + pinLen + pukLen);
        boolean withoutPin = length == REQUIRED_LENGTH;
        bad |= (pinOk | withoutPin) ? 0 : ONE;

        pinOffset = pinValue;
        pinLength = withoutPin ? 0 : (byte) pinLen;
        pukOffset = pukValue;
        pukLength = withoutPin ? 0 : (byte) pukLen;
        return bad;
    }

    private static short differs(byte value, byte expected) {
        return (short) ((value ^ expected) & 0xFF);
    }

    /**
     * Writes the checked payload: key objects first (unusable until the flag), then one
     * transaction with the public key, PIN/PUK, the flag and the state. Wipes the scratch.
     */
    private void store(byte[] scratch, short p) {
        persistent.userPrivateKey.setS(scratch, (short) (p + USER_KEY_VALUE), USER_KEY_LENGTH);
        persistent.deviceAuthKey.setW(scratch, (short) (p + AUTH_KEY_VALUE),
                Constants.EC_POINT_LENGTH);
        boolean derived = crypto.derivePublicKey(persistent.userPrivateKey, scratch,
                PUBLIC_KEY_OFFSET);
        persistent.completePersonalization(derived, scratch, PUBLIC_KEY_OFFSET, scratch,
                pinOffset, pinLength, pukOffset, pukLength);
        wipeScratch();
    }

    private void wipeScratch() {
        Util.arrayFillNonAtomic(transients.scratch, (short) 0, Transients.SCRATCH_LENGTH,
                (byte) 0);
    }

    private static void requireP1P2Zero(byte[] buffer) {
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
    }
}
