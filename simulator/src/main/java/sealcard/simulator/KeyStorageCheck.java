package sealcard.simulator;

import com.licel.jcardsim.crypto.ByteContainer;
import java.math.BigInteger;
import java.util.Arrays;

/**
 * Refuses to start on jCardSim's own ByteContainer, whose {@code getBigInteger()} reads a
 * stale byte after a key is regenerated with a shorter value (see our ByteContainer): it
 * stores a 32-byte value, then a 31-byte one, and checks that the second comes back.
 */
final class KeyStorageCheck {
    private static final int LONG_LENGTH = 32;
    private static final byte FILL = (byte) 0xA5;

    private KeyStorageCheck() {
    }

    static void verify() {
        byte[] longer = new byte[LONG_LENGTH];
        Arrays.fill(longer, FILL);
        byte[] shorter = Arrays.copyOf(longer, LONG_LENGTH - 1);
        ByteContainer container = new ByteContainer();
        container.setBytes(longer);
        container.setBytes(shorter);
        if (!container.getBigInteger().equals(new BigInteger(1, shorter))) {
            throw new IllegalStateException("jCardSim's ByteContainer reads stale key bytes: "
                    + "sealcard-sim.jar must come before jcardsim.jar on the class path");
        }
    }
}
