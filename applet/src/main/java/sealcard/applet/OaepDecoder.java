package sealcard.applet;

import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacard.security.CryptoException;
import javacard.security.MessageDigest;
import javacard.security.PrivateKey;
import javacardx.crypto.Cipher;

/**
 * RSA-2048 OAEP decryption (SHA-256, MGF1-SHA-256, empty label; RFC 8017 section 7.1.2)
 * in constant time. With the platform's native OAEP-SHA256 cipher when it has one;
 * otherwise raw RSA and the decoding here, which looks at every byte whatever it finds:
 * the Y byte, the label hash and the 01 separator search are folded into masks, so a bad
 * ciphertext costs the same work as a good one and the caller sees one outcome.
 *
 * <p>The message always ends at {@code offset + 256} of the output buffer; {@link #decrypt}
 * returns its offset, and {@link #isValid} whether decryption and padding were fine.
 */
final class OaepDecoder {

    private static final short HASH_LENGTH = (short) 32;
    private static final short EM_LENGTH = Constants.RSA_MODULUS_LENGTH;
    /** maskedDB = EM[1 + hLen ..]: 256 - 1 - 32 = 223 bytes. */
    private static final short DB_LENGTH = (short) (EM_LENGTH - 1 - HASH_LENGTH);
    private static final short SEED_OFFSET = (short) 1;
    private static final short DB_OFFSET = (short) (1 + HASH_LENGTH);
    private static final short COUNTER_LENGTH = (short) 4;

    /** Work layout after the EM: counter, one hash output, lHash. */
    private static final short WORK_COUNTER = (short) 0;
    private static final short WORK_HASH = COUNTER_LENGTH;
    private static final short WORK_LABEL_HASH = (short) (WORK_HASH + HASH_LENGTH);
    /** Bytes of work space needed right after the 256-byte EM. */
    static final short WORK_LENGTH = (short) (WORK_LABEL_HASH + HASH_LENGTH);

    private static final short RESULT_VALID = (short) 0;
    private static final short RESULT_SLOTS = (short) 1;
    private static final short ONE = (short) 1;
    private static final short BYTE_MASK = (short) 0xFF;

    private final Crypto crypto;
    private final short[] result;

    OaepDecoder(Crypto crypto) {
        this.crypto = crypto;
        result = JCSystem.makeTransientShortArray(RESULT_SLOTS, JCSystem.CLEAR_ON_DESELECT);
    }

    /** Whether the last {@link #decrypt} found a well-formed OAEP encoding. */
    boolean isValid() {
        return result[RESULT_VALID] == ONE;
    }

    /**
     * Decrypts the 256-byte ciphertext with the private device key into
     * {@code out[offset .. offset + 256)} and decodes it. Needs {@link #WORK_LENGTH} more
     * bytes after those 256 (at most 256 more on the native path).
     *
     * @return the offset of the message in {@code out} (it ends at {@code offset + 256});
     *     meaningful only when {@link #isValid()}, but always inside the buffer
     */
    short decrypt(PrivateKey key, byte[] ciphertext, short ciphertextOffset, byte[] out,
            short offset) {
        Cipher oaep = crypto.oaepSha256();
        if (oaep != null) {
            return decryptNative(oaep, key, ciphertext, ciphertextOffset, out, offset);
        }
        short bad = rawRsa(key, ciphertext, ciphertextOffset, out, offset);
        short workOffset = (short) (offset + EM_LENGTH);
        MessageDigest sha = crypto.sha256();

        // seed = maskedSeed XOR MGF1(maskedDB, 32); DB = maskedDB XOR MGF1(seed, 223)
        mgf1Xor(sha, out, (short) (offset + DB_OFFSET), DB_LENGTH, out,
                (short) (offset + SEED_OFFSET), HASH_LENGTH, out, workOffset);
        mgf1Xor(sha, out, (short) (offset + SEED_OFFSET), HASH_LENGTH, out,
                (short) (offset + DB_OFFSET), DB_LENGTH, out, workOffset);

        // Y must be 0.
        bad |= (short) (out[offset] & BYTE_MASK);
        // lHash' must equal SHA-256 of the empty label.
        short labelHash = (short) (workOffset + WORK_LABEL_HASH);
        sha.reset();
        sha.doFinal(out, labelHash, (short) 0, out, labelHash);
        short db = (short) (offset + DB_OFFSET);
        for (short i = 0; i < HASH_LENGTH; i++) {
            bad |= (short) ((out[(short) (db + i)] ^ out[(short) (labelHash + i)]) & BYTE_MASK);
        }
        // PS (zeros) then 01 then M: find the first non-zero byte; it must be 01.
        short found = 0;
        short separator = 0;
        for (short i = HASH_LENGTH; i < DB_LENGTH; i++) {
            short value = (short) (out[(short) (db + i)] & BYTE_MASK);
            short isZero = isZero(value);
            short isOne = isZero((short) (value ^ 1));
            short first = (short) ((ONE - found) & (ONE - isZero));
            short mask = (short) (0 - first);
            separator = (short) ((separator & ~mask) | (i & mask));
            bad |= (short) (first & (ONE - isOne));
            found |= first;
        }
        bad |= (short) (ONE - found);
        Util.arrayFillNonAtomic(out, workOffset, WORK_LENGTH, (byte) 0);
        result[RESULT_VALID] = isZero(bad);
        short messageOffset = (short) (db + separator + 1);
        // Without a separator the "message" is empty, still inside the buffer.
        short noSeparator = (short) (0 - (ONE - found));
        short end = (short) (offset + EM_LENGTH);
        return (short) ((messageOffset & ~noSeparator) | (end & noSeparator));
    }

    /** 1 when {@code value} (0..255, or any short for the OR-accumulator) is 0, else 0. */
    private static short isZero(short value) {
        short folded = (short) ((value | (short) (value >> 8)) & BYTE_MASK);
        return (short) (((short) (folded - 1) >> 8) & 1);
    }

    /**
     * Raw RSA into {@code out[offset .. offset + 256)}, right-aligned (platforms may drop
     * leading zero bytes): always writes all 256 bytes.
     *
     * @return 0, or 1 when the platform refused the ciphertext (then the EM is all zero)
     */
    private short rawRsa(PrivateKey key, byte[] ciphertext, short ciphertextOffset,
            byte[] out, short offset) {
        short staging = (short) (offset + EM_LENGTH);
        short length;
        short bad = 0;
        try {
            Cipher rsa = crypto.rsaNoPad();
            rsa.init(key, Cipher.MODE_DECRYPT);
            length = rsa.doFinal(ciphertext, ciphertextOffset, SealedBlob.CIPHERTEXT_LENGTH, out,
                    staging);
        } catch (CryptoException e) {
            length = 0;
            bad = ONE;
        } catch (RuntimeException e) {
            // jCardSim lets the library's exception for a ciphertext >= modulus through.
            length = 0;
            bad = ONE;
        }
        short zeros = (short) (EM_LENGTH - length);
        Util.arrayFillNonAtomic(out, offset, zeros, (byte) 0);
        Util.arrayCopyNonAtomic(out, staging, out, (short) (offset + zeros), length);
        Util.arrayFillNonAtomic(out, staging, EM_LENGTH, (byte) 0);
        return bad;
    }

    /** Native OAEP-SHA256: the message, right-aligned to end at {@code offset + 256}. */
    private short decryptNative(Cipher oaep, PrivateKey key, byte[] ciphertext,
            short ciphertextOffset, byte[] out, short offset) {
        short staging = (short) (offset + EM_LENGTH);
        short length;
        short valid;
        try {
            oaep.init(key, Cipher.MODE_DECRYPT);
            length = oaep.doFinal(ciphertext, ciphertextOffset, SealedBlob.CIPHERTEXT_LENGTH,
                    out, staging);
            valid = ONE;
        } catch (CryptoException e) {
            length = 0;
            valid = 0;
        }
        short start = (short) (offset + EM_LENGTH - length);
        Util.arrayFillNonAtomic(out, offset, (short) (EM_LENGTH - length), (byte) 0);
        Util.arrayCopyNonAtomic(out, staging, out, start, length);
        Util.arrayFillNonAtomic(out, staging, EM_LENGTH, (byte) 0);
        result[RESULT_VALID] = valid;
        return start;
    }

    /**
     * XORs MGF1-SHA-256({@code seed}, {@code targetLength}) into {@code target}: block c is
     * SHA-256(seed || c as 4 bytes).
     */
    private static void mgf1Xor(MessageDigest sha, byte[] seed, short seedOffset,
            short seedLength, byte[] target, short targetOffset, short targetLength,
            byte[] work, short workOffset) {
        short counter = (short) (workOffset + WORK_COUNTER);
        short hash = (short) (workOffset + WORK_HASH);
        Util.arrayFillNonAtomic(work, counter, COUNTER_LENGTH, (byte) 0);
        short done = 0;
        while (done < targetLength) {
            sha.reset();
            sha.update(seed, seedOffset, seedLength);
            sha.doFinal(work, counter, COUNTER_LENGTH, work, hash);
            short chunk = (short) (targetLength - done);
            if (chunk > HASH_LENGTH) {
                chunk = HASH_LENGTH;
            }
            for (short i = 0; i < chunk; i++) {
                short at = (short) (targetOffset + done + i);
                target[at] = (byte) (target[at] ^ work[(short) (hash + i)]);
            }
            done = (short) (done + chunk);
            work[(short) (counter + COUNTER_LENGTH - 1)]++;
        }
    }
}
