package sealcard.applet.model;

import javacard.framework.JCSystem;
import javacard.framework.OwnerPIN;
import javacard.framework.PINException;

/**
 * An {@link OwnerPIN} whose persistent state lives in the memory model, with the semantics
 * of the Java Card API: during PIN presentation ({@link #check}, {@link #reset}) the try
 * counter is written outside any transaction, and {@code check} decrements it <em>before</em>
 * comparing (a tear during VERIFY costs a try); the administrative {@link #update} and
 * {@link #resetAndUnblock} take part in an open transaction; the validated flag is a
 * {@code CLEAR_ON_RESET} transient. The instrumented applet gets one of these wherever its
 * code says {@code new OwnerPIN}.
 */
public final class ModelOwnerPIN extends OwnerPIN {

    private final byte tryLimit;
    private final byte maxSize;
    private final byte[] value;
    private byte length;
    private byte tries;
    private final boolean[] validated;
    /** Counts failed comparisons (for the harness: each must have cost a try). */
    private long failedComparisons;

    public ModelOwnerPIN(byte tryLimit, byte maxSize) {
        super(tryLimit, maxSize);
        this.tryLimit = tryLimit;
        this.maxSize = maxSize;
        this.value = new byte[maxSize];
        this.tries = tryLimit;
        this.validated = JCSystem.makeTransientBooleanArray((short) 1, JCSystem.CLEAR_ON_RESET);
    }

    @Override
    public boolean check(byte[] pin, short offset, byte presented) {
        validated[0] = false;
        if (tries == 0) {
            return false;
        }
        setTriesNonTransactional((byte) (tries - 1));
        int diff = presented ^ length;
        for (int i = 0; i < maxSize; i++) {
            byte given = i < presented ? pin[offset + i] : 0;
            byte stored = i < length ? value[i] : 0;
            diff |= given ^ stored;
        }
        if (diff != 0) {
            failedComparisons++;
            return false;
        }
        validated[0] = true;
        setTriesNonTransactional(tryLimit);
        return true;
    }

    private void setTriesNonTransactional(byte newTries) {
        CardMemory.beforeWrite();
        byte old = tries;
        CardMemory.recordJournal(() -> tries = old);
        tries = newTries;
    }

    @Override
    public byte getTriesRemaining() {
        return tries;
    }

    @Override
    public boolean isValidated() {
        return validated[0];
    }

    @Override
    public void reset() {
        if (validated[0]) {
            validated[0] = false;
            setTriesNonTransactional(tryLimit);
        }
    }

    @Override
    public void update(byte[] pin, short offset, byte newLength) {
        if (newLength > maxSize || newLength < 0) {
            PINException.throwIt(PINException.ILLEGAL_VALUE);
        }
        CardMemory.beforeWrite();
        byte[] oldValue = value.clone();
        byte oldLength = length;
        byte oldTries = tries;
        Runnable undo = () -> {
            System.arraycopy(oldValue, 0, value, 0, value.length);
            length = oldLength;
            tries = oldTries;
        };
        CardMemory.recordTransactional(undo);
        CardMemory.recordJournal(undo);
        java.util.Arrays.fill(value, (byte) 0);
        System.arraycopy(pin, offset, value, 0, newLength);
        length = newLength;
        tries = tryLimit;
        validated[0] = false;
    }

    @Override
    public void resetAndUnblock() {
        CardMemory.beforeWrite();
        byte oldTries = tries;
        Runnable undo = () -> tries = oldTries;
        CardMemory.recordTransactional(undo);
        CardMemory.recordJournal(undo);
        tries = tryLimit;
        validated[0] = false;
    }

    /** The harness's view: the stored value (a copy). */
    public byte[] storedValue() {
        return java.util.Arrays.copyOf(value, length);
    }

    /** The harness's view: failed comparisons so far. */
    public long failedComparisons() {
        return failedComparisons;
    }
}
