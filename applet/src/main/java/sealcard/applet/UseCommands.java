package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.Util;
import javacard.security.Signature;

/**
 * What the card does for its user and for the issuer after personalization: SIGN HASH
 * (secp256k1, low S, PIN verified), GET CHALLENGE (for the next ISSUER COMMAND) and
 * INTERNAL AUTHENTICATE (the issuer authentication key signs a host challenge). The
 * dispatcher enforces the states.
 */
final class UseCommands {

    private static final short HASH_LENGTH = (short) 32;
    private static final short AUTH_CHALLENGE_MIN = (short) 8;
    private static final short AUTH_CHALLENGE_MAX = (short) 64;
    /** Where SIGN HASH puts the hash, the signature and the low-S work area. */
    private static final short SIGNATURE_OFFSET = Transients.SCRATCH_SIGNATURE_OFFSET;
    private static final short LOW_S_WORK = (short) (SIGNATURE_OFFSET
            + Persistent.MAX_ECDSA_SIGNATURE_LENGTH);

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final ResponseSender sender;
    private final PinCommands pins;

    UseCommands(Persistent persistent, Transients transients, Crypto crypto,
            ResponseSender sender, PinCommands pins) {
        this.persistent = persistent;
        this.transients = transients;
        this.crypto = crypto;
        this.sender = sender;
        this.pins = pins;
    }

    /** SIGN HASH: {@code 00 2A 9E 9A 20 <hash>}; answers a low-S DER signature. */
    void signHash(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != Constants.PSO_P1P2_SIGN) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0, HASH_LENGTH,
                Constants.SW_WRONG_LENGTH);
        if (length != HASH_LENGTH) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        if (!pins.isPinVerified()) {
            ISOException.throwIt(Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        }
        pins.enforcePukBlocked();
        if (!persistent.userKeyPresent
                || (crypto.capabilities() & Constants.CAP_ECDSA_PRECOMPUTED) == 0) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        Signature ecdsa = crypto.ecdsaSha256();
        ecdsa.init(persistent.userPrivateKey, Signature.MODE_SIGN);
        short signatureLength = ecdsa.signPreComputedHash(scratch, (short) 0, HASH_LENGTH,
                scratch, SIGNATURE_OFFSET);
        signatureLength = LowS.normalize(scratch, SIGNATURE_OFFSET, signatureLength, scratch,
                LOW_S_WORK);
        sender.send(apdu, scratch, SIGNATURE_OFFSET, signatureLength);
    }

    /** GET CHALLENGE: {@code 00 84 00 00 10}; a fresh challenge for the next ISSUER COMMAND. */
    void getChallenge(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        IncomingData.requireNoData(apdu);
        crypto.random().generateData(transients.challenge, (short) 0,
                Constants.CHALLENGE_LENGTH);
        transients.shorts[Transients.CHALLENGE_STATE] = Transients.CHALLENGE_ISSUED;
        sender.send(apdu, transients.challenge, (short) 0, Constants.CHALLENGE_LENGTH);
    }

    /**
     * INTERNAL AUTHENTICATE: {@code 00 88 00 00 Lc <challenge>}; ECDSA P-256 SHA-256 with the
     * issuer authentication key over {@code "SCIA" || len(serial) || serial || challenge}.
     */
    void internalAuthenticate(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        if (Util.getShort(buffer, ISO7816.OFFSET_P1) != 0) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        byte[] scratch = transients.scratch;
        short header = (short) (4 + 1 + persistent.serialLength);
        short length = IncomingData.receive(apdu, scratch, header, AUTH_CHALLENGE_MAX,
                Constants.SW_WRONG_LENGTH);
        if (length < AUTH_CHALLENGE_MIN) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        short at = Util.setShort(scratch, (short) 0, Constants.INTERNAL_AUTH_MAGIC_HIGH);
        at = Util.setShort(scratch, at, Constants.INTERNAL_AUTH_MAGIC_LOW);
        scratch[at++] = (byte) persistent.serialLength;
        Util.arrayCopyNonAtomic(persistent.serial, (short) 0, scratch, at,
                persistent.serialLength);
        Signature ecdsa = crypto.ecdsaSha256();
        ecdsa.init(persistent.issuerAuthPrivateKey, Signature.MODE_SIGN);
        short signatureLength = ecdsa.sign(scratch, (short) 0, (short) (header + length),
                scratch, SIGNATURE_OFFSET);
        sender.send(apdu, scratch, SIGNATURE_OFFSET, signatureLength);
    }
}
