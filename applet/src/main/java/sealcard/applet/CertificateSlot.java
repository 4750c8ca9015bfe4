package sealcard.applet;

import javacard.framework.JCSystem;

/**
 * One stored certificate (an opaque DER blob), double-buffered in EEPROM: chunks go to
 * the spare buffer; only {@link #makeSpareCurrent} (one small transaction over the active
 * index and the length) changes what GET DATA returns. A tear at any moment leaves either
 * the old or the new certificate, never a mix.
 */
final class CertificateSlot {

    private static final byte NONE = (byte) 0;
    private static final byte FIRST = (byte) 1;
    private static final byte SECOND = (byte) 2;

    private final byte[] first;
    private final byte[] second;
    private byte active;
    private short length;

    CertificateSlot() {
        first = new byte[Constants.MAX_CERT_LENGTH];
        second = new byte[Constants.MAX_CERT_LENGTH];
        active = NONE;
        length = 0;
    }

    /** Whether a certificate is stored. */
    boolean isPresent() {
        return active != NONE;
    }

    /** The buffer holding the current certificate (only when {@link #isPresent()}). */
    byte[] current() {
        return active == SECOND ? second : first;
    }

    /** Length of the current certificate, 0 when none. */
    short length() {
        return length;
    }

    /** The buffer chunks are written to: never the current one. */
    byte[] spare() {
        return active == FIRST ? second : first;
    }

    /**
     * Makes the spare buffer current with {@code newLength} bytes, atomically. Must be
     * called outside any transaction (it opens its own).
     */
    void makeSpareCurrent(short newLength) {
        byte next = active == FIRST ? SECOND : FIRST;
        JCSystem.beginTransaction();
        active = next;
        length = newLength;
        JCSystem.commitTransaction();
    }

    /**
     * Forgets the certificate. Called inside the caller's transaction (key regeneration
     * clears a key, its certificate and the signed device key together).
     */
    void clearInTransaction() {
        active = NONE;
        length = 0;
    }
}
