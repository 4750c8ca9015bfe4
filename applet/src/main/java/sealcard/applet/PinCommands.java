package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.OwnerPIN;
import javacard.framework.Util;

/**
 * PIN and PUK in state {@code STATE_PERSONALIZED} (the dispatcher enforces the state):
 * VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER. Counters live in {@link OwnerPIN}s
 * (EEPROM, decremented before the comparison, so a tear still costs a try). The "verified"
 * state is the PIN object's flag AND a {@code CLEAR_ON_DESELECT} RAM flag, so it never
 * survives a reset or a deselect.
 */
final class PinCommands {

    private static final short VERIFIED = (short) 1;
    private static final short TRIES_MASK = (short) 0x0F;
    /** Longest CHANGE / RESET RETRY COUNTER data: two TLVs of at most 12 bytes. */
    private static final short MAX_PAIR_LENGTH = (short) (2 * PinFormat.HEADER
            + Constants.PUK_MAX_LENGTH + Constants.PUK_MAX_LENGTH);

    private final Persistent persistent;
    private final Transients transients;

    PinCommands(Persistent persistent, Transients transients) {
        this.persistent = persistent;
        this.transients = transients;
    }

    /** Whether the PIN was verified in this session (select). */
    boolean isPinVerified() {
        return transients.shorts[Transients.PIN_VERIFIED] == VERIFIED
                && persistent.pin.isValidated();
    }

    /** Forgets a verification (on select, deselect, and after a PIN change). */
    void forgetVerification() {
        transients.shorts[Transients.PIN_VERIFIED] = 0;
        persistent.pin.reset();
    }

    /** VERIFY: {@code 00 20 00 81 [Lc PIN]}. */
    void verify(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2(buffer, (byte) 0);
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0, Constants.PIN_MAX_LENGTH,
                Constants.SW_WRONG_LENGTH);
        if (length != 0 && length < Constants.PIN_MIN_LENGTH) {
            ISOException.throwIt(Constants.SW_WRONG_LENGTH);
        }
        if (!persistent.pinSet) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        OwnerPIN pin = persistent.pin;
        if (length == 0) {
            if (isPinVerified()) {
                return;
            }
            requireNotBlocked(pin);
            throwTries(pin);
        }
        requireNotBlocked(pin);
        transients.shorts[Transients.PIN_VERIFIED] = 0;
        boolean matches = check(pin, scratch, (short) 0, (byte) length);
        wipe();
        if (!matches) {
            throwTries(pin);
        }
        transients.shorts[Transients.PIN_VERIFIED] = VERIFIED;
    }

    /**
     * CHANGE REFERENCE DATA: {@code 00 24 P1 81 Lc <TLVs>}. P1=00: {@code 03 old 03 new};
     * P1=01: {@code 03 PIN 04 PUK}, only while no PIN is set.
     */
    void change(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        byte mode = buffer[ISO7816.OFFSET_P1];
        if (mode != Constants.CHANGE_P1_OLD_AND_NEW && mode != Constants.CHANGE_P1_INITIAL) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
        requireP1P2(buffer, mode);
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0, MAX_PAIR_LENGTH,
                Constants.SW_WRONG_LENGTH);
        byte second = mode == Constants.CHANGE_P1_INITIAL ? Constants.TAG_PUK
                : Constants.TAG_PIN;
        if (!PinFormat.isPair(scratch, (short) 0, length, Constants.TAG_PIN, second)) {
            wipe();
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        byte firstLength = PinFormat.firstLength(scratch, (short) 0);
        short secondValue = PinFormat.secondValue(scratch, (short) 0);
        byte secondLength = PinFormat.secondLength(scratch, (short) 0);
        if (mode == Constants.CHANGE_P1_INITIAL) {
            if (persistent.pinSet) {
                wipe();
                ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
            }
            persistent.setInitialPinPuk(scratch, PinFormat.FIRST_VALUE, firstLength,
                    secondValue, secondLength);
            wipe();
            return;
        }
        if (!persistent.pinSet) {
            wipe();
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        OwnerPIN pin = persistent.pin;
        requireNotBlocked(pin);
        if (!check(pin, scratch, PinFormat.FIRST_VALUE, firstLength)) {
            wipe();
            throwTries(pin);
        }
        persistent.changePin(scratch, secondValue, secondLength);
        forgetVerification();
        wipe();
    }

    /**
     * RESET RETRY COUNTER: {@code 00 2C 00 81 Lc <04 PUK 03 new PIN>}. When the PUK blocks,
     * the user key is wiped in the same command ({@code 6983}).
     */
    void resetRetryCounter(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        requireP1P2(buffer, (byte) 0);
        byte[] scratch = transients.scratch;
        short length = IncomingData.receive(apdu, scratch, (short) 0, MAX_PAIR_LENGTH,
                Constants.SW_WRONG_LENGTH);
        if (!PinFormat.isPair(scratch, (short) 0, length, Constants.TAG_PUK, Constants.TAG_PIN)) {
            wipe();
            ISOException.throwIt(Constants.SW_WRONG_DATA);
        }
        if (!persistent.pinSet) {
            wipe();
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
        OwnerPIN puk = persistent.puk;
        if (puk.getTriesRemaining() == 0) {
            enforcePukBlocked();
            wipe();
            ISOException.throwIt(Constants.SW_AUTH_METHOD_BLOCKED);
        }
        if (!check(puk, scratch, PinFormat.FIRST_VALUE, PinFormat.firstLength(scratch,
                (short) 0))) {
            wipe();
            if (puk.getTriesRemaining() == 0) {
                enforcePukBlocked();
                ISOException.throwIt(Constants.SW_AUTH_METHOD_BLOCKED);
            }
            throwTries(puk);
        }
        persistent.changePin(scratch, PinFormat.secondValue(scratch, (short) 0),
                PinFormat.secondLength(scratch, (short) 0));
        forgetVerification();
        wipe();
    }

    /**
     * A blocked PUK makes the user key unusable for good. Called where the PUK blocks and
     * again by every user of the key, in case a tear fell between the two.
     */
    void enforcePukBlocked() {
        if (persistent.puk.getTriesRemaining() == 0 && persistent.userKeyPresent) {
            persistent.wipeUserKey();
        }
    }

    private static boolean check(OwnerPIN pin, byte[] data, short offset, byte length) {
        return pin.check(data, offset, length);
    }

    private static void requireNotBlocked(OwnerPIN pin) {
        if (pin.getTriesRemaining() == 0) {
            ISOException.throwIt(Constants.SW_AUTH_METHOD_BLOCKED);
        }
    }

    private static void throwTries(OwnerPIN pin) {
        ISOException.throwIt((short) (Constants.SW_PIN_TRIES_REMAINING
                | (pin.getTriesRemaining() & TRIES_MASK)));
    }

    private static void requireP1P2(byte[] buffer, byte p1) {
        if (buffer[ISO7816.OFFSET_P1] != p1 || buffer[ISO7816.OFFSET_P2] != Constants.PIN_REF_USER) {
            ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
    }

    private void wipe() {
        Util.arrayFillNonAtomic(transients.scratch, (short) 0, MAX_PAIR_LENGTH, (byte) 0);
    }
}
