package sealcard.applet;

import javacard.framework.JCSystem;

/**
 * RAM scratch, all {@code CLEAR_ON_DESELECT}: a reset or a new SELECT wipes it. Allocated
 * once, at install.
 */
final class Transients {

    /**
     * Size of the scratch buffer: the largest answer built in RAM is the RSA public key
     * TLV pair (4 + 256 + 2 + 4 bytes); the signed-device-key message is hashed piecewise
     * through it, and signatures land behind it.
     */
    static final short SCRATCH_LENGTH = (short) 512;

    /** Offset in {@link #scratch} where signatures are written (after a 256-byte block). */
    static final short SCRATCH_SIGNATURE_OFFSET = (short) 384;

    private static final short SHORT_SLOTS = (short) 8;
    private static final short OBJECT_SLOTS = (short) 1;

    /** Short slot: offset of the pending answer in its source array. */
    static final short PENDING_OFFSET = (short) 0;
    /** Short slot: bytes of the pending answer still to send. */
    static final short PENDING_REMAINING = (short) 1;
    /** Short slot: 1 while a command chain is open. */
    static final short CHAIN_OPEN = (short) 2;
    /** Short slot: INS of the open chain. */
    static final short CHAIN_INS = (short) 3;
    /** Short slot: P1P2 of the open chain. */
    static final short CHAIN_P1P2 = (short) 4;
    /** Short slot: bytes received so far in the open chain. */
    static final short CHAIN_RECEIVED = (short) 5;

    /**
     * Short slot: the last GET CHALLENGE answer's life, one of {@link #CHALLENGE_NONE},
     * {@link #CHALLENGE_ISSUED}, {@link #CHALLENGE_IN_USE}.
     */
    static final short CHALLENGE_STATE = (short) 6;
    /** Short slot: 1 once the PIN was verified in this session (cleared on reset/deselect). */
    static final short PIN_VERIFIED = (short) 7;

    /** {@link #CHALLENGE_STATE}: no challenge. */
    static final short CHALLENGE_NONE = (short) 0;
    /** {@link #CHALLENGE_STATE}: GET CHALLENGE answered it; the next command may use it. */
    static final short CHALLENGE_ISSUED = (short) 1;
    /** {@link #CHALLENGE_STATE}: the current command (an ISSUER COMMAND) consumes it. */
    static final short CHALLENGE_IN_USE = (short) 2;

    /** Object slot: the array the pending answer is read from. */
    static final short PENDING_SOURCE = (short) 0;

    /** General-purpose RAM buffer (answers, message pieces, signatures). */
    final byte[] scratch;

    /** The last GET CHALLENGE answer ({@code CHALLENGE_LENGTH} bytes). */
    final byte[] challenge;

    /** Small counters and flags, addressed by the {@code *_OFFSET} style slot names above. */
    final short[] shorts;

    /** References to RAM or EEPROM arrays, addressed by slot names above. */
    final Object[] objects;

    Transients() {
        scratch = JCSystem.makeTransientByteArray(SCRATCH_LENGTH, JCSystem.CLEAR_ON_DESELECT);
        challenge = JCSystem.makeTransientByteArray(Constants.CHALLENGE_LENGTH,
                JCSystem.CLEAR_ON_DESELECT);
        shorts = JCSystem.makeTransientShortArray(SHORT_SLOTS, JCSystem.CLEAR_ON_DESELECT);
        objects = JCSystem.makeTransientObjectArray(OBJECT_SLOTS, JCSystem.CLEAR_ON_DESELECT);
    }
}
