package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.Signature;

/**
 * ISSUER COMMAND ({@code 80 60 P1 00}, state {@code STATE_PERSONALIZED}): a command the
 * issuer signed with its private device authentication key over
 * {@code "SCIC" || len(serial) || serial || challenge || INS || P1 || P2 || len(body) || body},
 * where the challenge is the card's last GET CHALLENGE answer. The dispatcher hands the
 * challenge to this command only ({@code CHALLENGE_IN_USE}) and forgets it at the next
 * command whatever happens here, so a signature works once.
 */
final class IssuerCommands {

    /** Data: body length (1), body, DER signature; the body is at most a PIN TLV. */
    private static final short BODY_OFFSET = (short) 1;
    private static final short MAX_BODY_LENGTH = (short) (PinFormat.HEADER
            + Constants.PIN_MAX_LENGTH);
    private static final short MAX_DATA_LENGTH = (short) (1 + MAX_BODY_LENGTH
            + Persistent.MAX_ECDSA_SIGNATURE_LENGTH);
    private static final short SIGNATURE_MIN_LENGTH = (short) 8;
    /** The signed message is built behind the command data in the scratch. */
    private static final short MESSAGE_OFFSET = (short) 128;

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final PinCommands pins;

    IssuerCommands(Persistent persistent, Transients transients, Crypto crypto,
            PinCommands pins) {
        this.persistent = persistent;
        this.transients = transients;
        this.crypto = crypto;
        this.pins = pins;
    }

    /** ISSUER COMMAND: P1=01 reset the PIN (body {@code 03 len PIN}), P1=02 terminate. */
    void issuerCommand(APDU apdu) {
        boolean challengeHeld = transients.shorts[Transients.CHALLENGE_STATE]
                == Transients.CHALLENGE_IN_USE;
        transients.shorts[Transients.CHALLENGE_STATE] = Transients.CHALLENGE_NONE;
        byte[] buffer = apdu.getBuffer();
        byte command = buffer[ISO7816.OFFSET_P1];
        if (buffer[ISO7816.OFFSET_P2] != 0 || (command != Constants.ISSUER_CMD_RESET_PIN
                && command != Constants.ISSUER_CMD_TERMINATE)) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0, MAX_DATA_LENGTH,
                Constants.SW_WRONG_DATA);
        short bodyLength = length > 0 ? scratch[0] : (short) -1;
        short signatureOffset = (short) (BODY_OFFSET + bodyLength);
        short signatureLength = (short) (length - signatureOffset);
        if (bodyLength < 0 || bodyLength > MAX_BODY_LENGTH
                || signatureLength < SIGNATURE_MIN_LENGTH
                || signatureLength > Persistent.MAX_ECDSA_SIGNATURE_LENGTH
                || !Der.isSingleSequence(scratch, signatureOffset, signatureLength)
                || !isBody(command, scratch, bodyLength)) {
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        if (!challengeHeld) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        if (!issuerSigned(buffer, scratch, bodyLength, signatureOffset, signatureLength)) {
            ISOException.throwIt(Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        if (command == Constants.ISSUER_CMD_RESET_PIN) {
            persistent.resetPinByIssuer(scratch, (short) (BODY_OFFSET + PinFormat.HEADER),
                    (byte) (bodyLength - PinFormat.HEADER));
            pins.forgetVerification();
        } else {
            persistent.terminate();
            pins.forgetVerification();
        }
        Util.arrayFillNonAtomic(scratch, (short) 0, Transients.SCRATCH_LENGTH, (byte) 0);
    }

    private static boolean isBody(byte command, byte[] data, short bodyLength) {
        if (command == Constants.ISSUER_CMD_TERMINATE) {
            return bodyLength == 0;
        }
        return PinFormat.isSingle(data, BODY_OFFSET, bodyLength, Constants.TAG_PIN);
    }

    private boolean issuerSigned(byte[] buffer, byte[] scratch, short bodyLength,
            short signatureOffset, short signatureLength) {
        short at = Util.setShort(scratch, MESSAGE_OFFSET, Constants.ISSUER_COMMAND_MAGIC_HIGH);
        at = Util.setShort(scratch, at, Constants.ISSUER_COMMAND_MAGIC_LOW);
        scratch[at++] = (byte) persistent.serialLength;
        at = Util.arrayCopyNonAtomic(persistent.serial, (short) 0, scratch, at,
                persistent.serialLength);
        at = Util.arrayCopyNonAtomic(transients.challenge, (short) 0, scratch, at,
                Constants.CHALLENGE_LENGTH);
        scratch[at++] = buffer[ISO7816.OFFSET_INS];
        scratch[at++] = buffer[ISO7816.OFFSET_P1];
        scratch[at++] = buffer[ISO7816.OFFSET_P2];
        at = Util.arrayCopyNonAtomic(scratch, (short) 0, scratch, at,
                (short) (BODY_OFFSET + bodyLength));
        Util.arrayFillNonAtomic(transients.challenge, (short) 0, Constants.CHALLENGE_LENGTH,
                (byte) 0);
        Signature verifier = crypto.ecdsaSha256();
        try {
            verifier.init(persistent.deviceAuthKey, Signature.MODE_VERIFY);
            return verifier.verify(scratch, MESSAGE_OFFSET, (short) (at - MESSAGE_OFFSET),
                    scratch, signatureOffset, signatureLength);
        } catch (CryptoException e) {
            return false;
        }
    }
}
