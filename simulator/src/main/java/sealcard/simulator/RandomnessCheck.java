package sealcard.simulator;

import java.lang.reflect.Constructor;
import java.security.SecureRandom;
import java.util.Arrays;

import com.licel.jcardsim.crypto.RandomDataImpl;

import javacard.security.RandomData;

/**
 * Makes jCardSim's randomness secure and refuses to run when it is not.
 *
 * jCardSim 3.0.6.0 has two sources: RandomDataImpl (the applet's RandomData), seeded from
 * SecureRandom only when the system property below is "1" (otherwise it is an unseeded SHA-1
 * generator: the same bytes on every card); and SecureRandomNullProvider (key generation and ECDSA
 * nonces), unseeded in every case and replaced by our own class of that name.
 */
final class RandomnessCheck {
    static final String SECURE_RANDOMDATA_PROPERTY = "com.licel.jcardsim.randomdata.secure";
    private static final String PROVIDER_CLASS =
            "com.licel.jcardsim.crypto.SecureRandomNullProvider";
    private static final int SAMPLE_LENGTH = 32;

    private RandomnessCheck() {
    }

    /** Sets the property, then checks that two fresh generators of each kind differ. */
    static void secureAndVerify() {
        System.setProperty(SECURE_RANDOMDATA_PROPERTY, "1");
        byte[] a = providerSample();
        byte[] b = providerSample();
        if (Arrays.equals(a, b)) {
            throw new IllegalStateException("jCardSim's SecureRandomNullProvider is deterministic: "
                    + "sealcard-sim.jar must come before jcardsim.jar on the class path");
        }
        byte[] c = randomDataSample();
        byte[] d = randomDataSample();
        if (Arrays.equals(c, d)) {
            throw new IllegalStateException("jCardSim's RandomData is deterministic although "
                    + SECURE_RANDOMDATA_PROPERTY + "=1");
        }
    }

    private static byte[] providerSample() {
        try {
            Class<?> cls = Class.forName(PROVIDER_CLASS);
            Constructor<?> ctor = cls.getDeclaredConstructor();
            ctor.setAccessible(true);
            SecureRandom random = (SecureRandom) ctor.newInstance();
            byte[] out = new byte[SAMPLE_LENGTH];
            random.nextBytes(out);
            return out;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot check " + PROVIDER_CLASS, e);
        }
    }

    @SuppressWarnings("deprecation") // ALG_SECURE_RANDOM: what JavaCard 3.0.4 applets use
    private static byte[] randomDataSample() {
        RandomDataImpl random = new RandomDataImpl(RandomData.ALG_SECURE_RANDOM);
        byte[] out = new byte[SAMPLE_LENGTH];
        random.generateData(out, (short) 0, (short) SAMPLE_LENGTH);
        return out;
    }
}
