package com.licel.jcardsim.crypto;

import java.security.SecureRandom;
import sealcard.applet.model.Randomness;

/**
 * For the assurance harness only (build.xml puts this first on its class path): jCardSim's
 * key generation and ECDSA nonces draw from here. The platform's SecureRandom, except while
 * the harness asks for a repeatable stream ({@link Randomness#deterministic(long)}).
 */
class SecureRandomNullProvider extends SecureRandom {
    private static final long serialVersionUID = 1L;

    /** Marker, as in the simulator's replacement. */
    static final boolean SEALCARD_REPLACEMENT = true;

    public SecureRandomNullProvider() {
        super();
    }

    @Override
    public void nextBytes(byte[] bytes) {
        if (Randomness.isDeterministic()) {
            Randomness.fill(bytes, 0, bytes.length);
        } else {
            super.nextBytes(bytes);
        }
    }

    @Override
    public byte[] generateSeed(int length) {
        byte[] out = new byte[length];
        nextBytes(out);
        return out;
    }
}
