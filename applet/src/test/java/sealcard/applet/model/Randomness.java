package sealcard.applet.model;

import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import javacard.security.RandomData;

/**
 * Where the card's randomness comes from under the model. By default the platform's
 * generator. In {@link #deterministic(long)} mode every draw (the applet's
 * {@code RandomData.generateData}, and jCardSim's key generation and ECDSA nonces through
 * the SecureRandomNullProvider of {@code applet/src/test-random}) comes from one SHA-256
 * counter stream, so a command run twice from the same state does exactly the same thing:
 * the tearing suite compares a torn run with an untorn one.
 */
public final class Randomness {

    private static boolean deterministic;
    private static byte[] seed = new byte[8];
    private static long counter;
    private static byte[] block = new byte[0];
    private static int used;

    private Randomness() {
    }

    /** From now on, draws repeat for the same seed. */
    public static void deterministic(long newSeed) {
        deterministic = true;
        seed = java.nio.ByteBuffer.allocate(8).putLong(newSeed).array();
        counter = 0;
        used = 0;
        block = new byte[0];
    }

    /** Back to the platform's generator. */
    public static void platform() {
        deterministic = false;
    }

    public static boolean isDeterministic() {
        return deterministic;
    }

    /** Fills {@code out} from the deterministic stream. */
    public static synchronized void fill(byte[] out, int offset, int length) {
        for (int i = 0; i < length; i++) {
            if (used == block.length) {
                block = next();
                used = 0;
            }
            out[offset + i] = block[used++];
        }
    }

    private static byte[] next() {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(seed);
            sha.update(java.nio.ByteBuffer.allocate(8).putLong(counter++).array());
            return sha.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Replaces the applet's {@code RandomData.generateData}. */
    public static void generateData(RandomData random, byte[] buffer, short offset,
            short length) {
        if (deterministic) {
            if (length < 0 || offset < 0 || offset + length > buffer.length) {
                throw new ArrayIndexOutOfBoundsException();
            }
            fill(buffer, offset, length);
            return;
        }
        random.generateData(buffer, offset, length);
    }
}
