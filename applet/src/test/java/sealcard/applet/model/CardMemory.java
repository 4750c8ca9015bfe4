package sealcard.applet.model;

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.Collections;
import javacard.framework.JCSystem;
import javacard.framework.TransactionException;
import javacard.framework.Util;

/**
 * A model of a card's persistent memory under the applet: what jCardSim does not simulate.
 * The {@link Instrumenter} rewrites the applet's bytecode so that every write to persistent
 * memory (an object field outside the constructor, an element of an array the applet
 * allocated with {@code new}, a key object, a PIN object) passes through here first. That
 * gives, as on a real card (Java Card Runtime Environment Specification, Classic Edition,
 * "Atomicity and Transactions"):
 *
 * <ul>
 *   <li>transactions that roll back: {@code beginTransaction} journals the old value of
 *       every persistent location written until {@code commitTransaction}; an abort, or a
 *       power loss before the commit, restores them (at the next power-up);</li>
 *   <li>single writes that are atomic (a field, an array element, {@code Util.arrayCopy});
 *       {@code arrayCopyNonAtomic} and {@code arrayFillNonAtomic} write byte by byte and do
 *       not take part in a transaction;</li>
 *   <li>transient arrays ({@code makeTransient*Array}) never journaled, never counted;</li>
 *   <li>a <b>tear</b>: with {@link #tearAt} = k the k-th persistent write of the command
 *       (counted from {@link #startCounting}) does not happen; instead {@link Torn} is
 *       thrown and every further write is refused, as if power was cut just before it.</li>
 * </ul>
 *
 * <p>Besides, a <b>journal</b> (independent of transactions) can record every persistent
 * write since {@link #mark()} and {@link #restoreToMark()} undoes them, so a test can try a
 * command from the same state thousands of times without rebuilding the card.
 *
 * <p>One model per JVM: the harness drives one card at a time, from one thread.
 */
public final class CardMemory {

    private CardMemory() {
    }

    /** An undo record. */
    private interface Undo {
        void undo();
    }

    private static final Set<Object> PERSISTENT_ARRAYS =
            Collections.newSetFromMap(new IdentityHashMap<>());
    private static final Map<String, Field> FIELDS = new HashMap<>();

    private static int transactionDepth;
    private static final List<Undo> TRANSACTION_UNDO = new ArrayList<>();
    private static final List<Undo> JOURNAL = new ArrayList<>();
    private static boolean journaling;

    private static long writes;
    private static long tearAt = -1;
    private static boolean torn;
    private static boolean counting;

    // ---- the harness side ------------------------------------------------------------

    /** Starts counting writes of one command run; tears at write {@code k} (1-based), or never (-1). */
    public static void startCounting(long k) {
        writes = 0;
        tearAt = k;
        torn = false;
        counting = true;
    }

    /** Stops counting; returns how many persistent writes the run made (or attempted). */
    public static long stopCounting() {
        counting = false;
        tearAt = -1;
        return writes;
    }

    /** Writes counted so far in this run. */
    public static long writesSoFar() {
        return writes;
    }

    /** Whether the last run was torn. */
    public static boolean wasTorn() {
        return torn;
    }

    /**
     * Power-up after a tear or a reset: an open transaction is rolled back (its journal
     * replayed backwards), as the card's runtime does at the next power-up.
     */
    public static void powerUp() {
        if (transactionDepth != 0) {
            rollBack();
        }
        torn = false;
        tearAt = -1;
    }

    /** Starts journaling every persistent write (for {@link #restoreToMark()}). */
    public static void mark() {
        JOURNAL.clear();
        journaling = true;
    }

    /** Undoes every persistent write since {@link #mark()}; journaling continues from here. */
    public static void restoreToMark() {
        boolean was = counting;
        counting = false;
        for (int i = JOURNAL.size() - 1; i >= 0; i--) {
            JOURNAL.get(i).undo();
        }
        JOURNAL.clear();
        counting = was;
    }

    /** Whether {@code array} is persistent (allocated by the applet with {@code new}). */
    public static boolean isPersistent(Object array) {
        return PERSISTENT_ARRAYS.contains(array);
    }

    // ---- the write gate --------------------------------------------------------------

    /** Every persistent write calls this first: counts it, and tears when its turn came. */
    static void beforeWrite() {
        if (torn) {
            throw new Torn("write after power loss");
        }
        if (!counting) {
            return;
        }
        writes++;
        if (writes == tearAt) {
            torn = true;
            throw new Torn("torn at write " + writes);
        }
    }

    private static void record(Undo undo, boolean transactional) {
        if (transactional && transactionDepth > 0) {
            TRANSACTION_UNDO.add(undo);
        }
        if (journaling) {
            JOURNAL.add(undo);
        }
    }

    /** Records a non-transactional write (PIN counters, key objects) for the journal only. */
    static void recordJournal(Runnable undo) {
        if (journaling) {
            JOURNAL.add(undo::run);
        }
    }

    /** Records a transactional write done elsewhere (PIN administration). */
    static void recordTransactional(Runnable undo) {
        record(undo::run, true);
    }

    // ---- hooks called by the instrumented applet ---------------------------------------

    /** Before {@code PUTFIELD owner.name}: journal the old value, count the write. */
    public static void fieldWrite(Object owner, String name) {
        beforeWrite();
        Field field = field(owner.getClass(), name);
        try {
            Object old = field.get(owner);
            record(() -> {
                try {
                    field.set(owner, old);
                } catch (IllegalAccessException e) {
                    throw new IllegalStateException(e);
                }
            }, true);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Field field(Class<?> type, String name) {
        String key = type.getName() + "#" + name;
        Field field = FIELDS.get(key);
        if (field == null) {
            for (Class<?> c = type; c != null && field == null; c = c.getSuperclass()) {
                try {
                    field = c.getDeclaredField(name);
                } catch (NoSuchFieldException e) {
                    field = null;
                }
            }
            if (field == null) {
                throw new IllegalStateException("no field " + key);
            }
            field.setAccessible(true);
            FIELDS.put(key, field);
        }
        return field;
    }

    /** Replaces {@code BASTORE} (byte[] and boolean[]). */
    public static void bastore(Object array, int index, int value) {
        if (array instanceof boolean[] flags) {
            boolean old = flags[index];
            if (PERSISTENT_ARRAYS.contains(array)) {
                beforeWrite();
                record(() -> flags[index] = old, true);
            }
            flags[index] = (value & 1) != 0;
            return;
        }
        byte[] bytes = (byte[]) array;
        byte old = bytes[index];
        if (PERSISTENT_ARRAYS.contains(array)) {
            beforeWrite();
            record(() -> bytes[index] = old, true);
        }
        bytes[index] = (byte) value;
    }

    /** Replaces {@code SASTORE}. */
    public static void sastore(short[] array, int index, int value) {
        short old = array[index];
        if (PERSISTENT_ARRAYS.contains(array)) {
            beforeWrite();
            record(() -> array[index] = old, true);
        }
        array[index] = (short) value;
    }

    /** Replaces {@code AASTORE}. */
    public static void aastore(Object[] array, int index, Object value) {
        Object old = array[index];
        if (PERSISTENT_ARRAYS.contains(array)) {
            beforeWrite();
            record(() -> array[index] = old, true);
        }
        array[index] = value;
    }

    /** After {@code NEWARRAY}/{@code ANEWARRAY} in applet code: a persistent array. */
    public static Object persistentArray(Object array) {
        PERSISTENT_ARRAYS.add(array);
        return array;
    }

    // ---- JCSystem ---------------------------------------------------------------------

    public static void beginTransaction() {
        if (transactionDepth != 0) {
            TransactionException.throwIt(TransactionException.IN_PROGRESS);
        }
        transactionDepth = 1;
        TRANSACTION_UNDO.clear();
    }

    /** Commit: the one atomic step that makes the journaled writes final (a tear point). */
    public static void commitTransaction() {
        if (transactionDepth == 0) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        beforeWrite();
        TRANSACTION_UNDO.clear();
        transactionDepth = 0;
    }

    public static void abortTransaction() {
        if (transactionDepth == 0) {
            TransactionException.throwIt(TransactionException.NOT_IN_PROGRESS);
        }
        rollBack();
    }

    private static void rollBack() {
        boolean was = counting;
        counting = false;
        boolean wasTorn = torn;
        torn = false;
        for (int i = TRANSACTION_UNDO.size() - 1; i >= 0; i--) {
            TRANSACTION_UNDO.get(i).undo();
        }
        TRANSACTION_UNDO.clear();
        transactionDepth = 0;
        torn = wasTorn;
        counting = was;
    }

    public static byte getTransactionDepth() {
        return (byte) transactionDepth;
    }

    // ---- Util ---------------------------------------------------------------------------

    /** {@code Util.arrayCopy}: atomic when the destination is persistent (one tear point). */
    public static short arrayCopy(byte[] src, short srcOff, byte[] dest, short destOff,
            short length) {
        if (PERSISTENT_ARRAYS.contains(dest)) {
            checkBounds(src, srcOff, dest, destOff, length);
            beforeWrite();
            byte[] old = java.util.Arrays.copyOfRange(dest, destOff, destOff + length);
            record(() -> System.arraycopy(old, 0, dest, destOff, old.length), true);
        }
        return Util.arrayCopyNonAtomic(src, srcOff, dest, destOff, length);
    }

    /** {@code Util.arrayCopyNonAtomic}: byte by byte into persistent memory, no transaction. */
    public static short arrayCopyNonAtomic(byte[] src, short srcOff, byte[] dest, short destOff,
            short length) {
        if (!PERSISTENT_ARRAYS.contains(dest)) {
            return Util.arrayCopyNonAtomic(src, srcOff, dest, destOff, length);
        }
        checkBounds(src, srcOff, dest, destOff, length);
        byte[] copy = java.util.Arrays.copyOfRange(src, srcOff, srcOff + length);
        for (int i = 0; i < length; i++) {
            writeNonAtomic(dest, destOff + i, copy[i]);
        }
        return (short) (destOff + length);
    }

    /** {@code Util.arrayFillNonAtomic}: byte by byte into persistent memory, no transaction. */
    public static short arrayFillNonAtomic(byte[] dest, short destOff, short length, byte value) {
        if (!PERSISTENT_ARRAYS.contains(dest)) {
            return Util.arrayFillNonAtomic(dest, destOff, length, value);
        }
        if (length < 0 || destOff < 0 || destOff + length > dest.length) {
            throw new ArrayIndexOutOfBoundsException();
        }
        for (int i = 0; i < length; i++) {
            writeNonAtomic(dest, destOff + i, value);
        }
        return (short) (destOff + length);
    }

    private static void writeNonAtomic(byte[] dest, int at, byte value) {
        beforeWrite();
        byte old = dest[at];
        recordJournal(() -> dest[at] = old);
        dest[at] = value;
    }

    /** {@code Util.setShort}: two byte writes, each journaled like an array store. */
    public static short setShort(byte[] dest, short offset, short value) {
        bastore(dest, offset, (byte) (value >> 8));
        bastore(dest, offset + 1, (byte) value);
        return (short) (offset + 2);
    }

    private static void checkBounds(byte[] src, short srcOff, byte[] dest, short destOff,
            short length) {
        if (length < 0 || srcOff < 0 || destOff < 0 || srcOff + length > src.length
                || destOff + length > dest.length) {
            throw new ArrayIndexOutOfBoundsException();
        }
    }

    // ---- transient arrays ----------------------------------------------------------------

    public static byte isTransient(Object object) {
        return JCSystem.isTransient(object);
    }
}
