package com.licel.jcardsim.crypto;

import java.security.SecureRandom;

/**
 * Replaces jCardSim 3.0.6.0's class of the same name, which is a SHA-1 digest generator that is
 * never seeded: with it every simulated card generates the same key pairs (KeyPairImpl) and every
 * ECDSA signature after a Signature.init uses the same nonce (AsymmetricSignatureImpl), which
 * leaks the private key. This one is the platform's SecureRandom.
 *
 * It works because sealcard-sim.jar comes before jcardsim.jar on the class path (the jar's own
 * classes, then its manifest Class-Path). SimLauncher checks at start that this class is the one
 * in use and refuses to run otherwise.
 */
class SecureRandomNullProvider extends SecureRandom {
    private static final long serialVersionUID = 1L;

    /** Marker read by SimLauncher's randomness check. */
    static final boolean SEALCARD_REPLACEMENT = true;

    public SecureRandomNullProvider() {
        super();
    }
}
