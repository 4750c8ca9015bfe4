package com.licel.jcardsim.crypto;

import java.math.BigInteger;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.CryptoException;

/**
 * Replaces jCardSim 3.0.6.0's class of the same name (same public API), which holds one
 * big-endian integer of a key (an EC private scalar S, RSA components, domain parameters).
 *
 * <p>The bug it fixes: jCardSim's version keeps its array when a new value is not longer
 * than the old one and records the new length, but {@code getBigInteger()} reads the
 * <em>whole</em> array. A key regenerated with a shorter value (an EC scalar below 2^248:
 * one key in 256) is then used for signing as {@code S * 256 + a stale byte} while its
 * public point is {@code S * G}: the card's signatures do not verify. {@code clearKey()}
 * zeroes the array but keeps it, so a key generated after a clear is hit the same way (the
 * applet's install-time probe generates and clears the issuer authentication key, so every
 * card's step A met it with probability 1/256).
 *
 * <p>Here every reader honours the recorded length. Works because sealcard-sim.jar (and in
 * the smoke test, the simulator's classes) come before jcardsim.jar on the class path;
 * {@code sealcard.simulator.KeyStorageCheck} refuses to start otherwise.
 */
public final class ByteContainer {

    /** Marker read by KeyStorageCheck. */
    static final boolean SEALCARD_REPLACEMENT = true;

    private byte[] data;
    private final byte memoryType;
    private short length;

    public ByteContainer() {
        this(JCSystem.MEMORY_TYPE_PERSISTENT);
    }

    public ByteContainer(byte memoryType) {
        this.memoryType = memoryType;
        this.length = 0;
    }

    public ByteContainer(BigInteger value) {
        this(JCSystem.MEMORY_TYPE_PERSISTENT);
        setBigInteger(value);
    }

    public ByteContainer(byte[] source, short offset, short count) {
        this(JCSystem.MEMORY_TYPE_PERSISTENT);
        setBytes(source, offset, count);
    }

    /** Stores a non-negative integer as its shortest unsigned big-endian bytes. */
    public void setBigInteger(BigInteger value) {
        if (value.signum() < 0) {
            throw new IllegalArgumentException("Negative bInteger");
        }
        byte[] signed = value.toByteArray();
        int skip = signed.length > 1 && signed[0] == 0 ? 1 : 0;
        setBytes(signed, (short) skip, (short) (signed.length - skip));
    }

    public void setBytes(byte[] source) {
        setBytes(source, (short) 0, (short) source.length);
    }

    /** Stores {@code count} bytes; the array is kept when it is big enough (as jCardSim does). */
    public void setBytes(byte[] source, short offset, short count) {
        if (data == null || data.length < count) {
            data = allocate(count);
        } else if (data.length > count) {
            // no byte of an older, longer value may stay behind the new one
            Util.arrayFillNonAtomic(data, count, (short) (data.length - count), (byte) 0);
        }
        Util.arrayCopy(source, offset, data, (short) 0, count);
        length = count;
    }

    private byte[] allocate(short count) {
        if (memoryType == JCSystem.MEMORY_TYPE_TRANSIENT_RESET
                || memoryType == JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT) {
            // jCardSim 3.0.6.0 makes both kinds CLEAR_ON_DESELECT; kept as it was
            return JCSystem.makeTransientByteArray(count, JCSystem.CLEAR_ON_DESELECT);
        }
        return new byte[count];
    }

    /** The stored integer: its {@code length} bytes only (the fix). */
    public BigInteger getBigInteger() {
        if (length == 0) {
            CryptoException.throwIt(CryptoException.UNINITIALIZED_KEY);
        }
        return new BigInteger(1, data, 0, length);
    }

    /** A copy of the stored bytes in a new array of the given JCSystem memory event type. */
    public byte[] getBytes(byte event) {
        if (length == 0) {
            CryptoException.throwIt(CryptoException.UNINITIALIZED_KEY);
        }
        byte[] out = JCSystem.makeTransientByteArray(length, event);
        getBytes(out, (short) 0);
        return out;
    }

    public short getBytes(byte[] destination, short offset) {
        if (length == 0) {
            CryptoException.throwIt(CryptoException.UNINITIALIZED_KEY);
        }
        if (destination.length - offset < length) {
            CryptoException.throwIt(CryptoException.ILLEGAL_VALUE);
        }
        Util.arrayCopy(data, (short) 0, destination, offset, length);
        return length;
    }

    public void clear() {
        if (data != null) {
            Util.arrayFillNonAtomic(data, (short) 0, (short) data.length, (byte) 0);
        }
        length = 0;
    }

    public boolean isInitialized() {
        return length > 0;
    }
}
