package sealcard.applet.model;

import javacard.security.ECKey;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.Key;
import javacard.security.KeyPair;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RSAPublicKey;

/**
 * Replacements for the applet's calls that change key objects. A key object's update is
 * one persistent write that does <em>not</em> take part in a transaction (the Java Card
 * specification leaves key data atomicity to the platform; the model takes the case less
 * favourable to the applet). A tear at that write leaves the key cleared (uninitialized), the
 * model of a key half written. Every change is journaled for {@link CardMemory#restoreToMark()}.
 */
public final class KeyCalls {

    private KeyCalls() {
    }

    private static void before(Key key) {
        KeySnapshot old = KeySnapshot.of(key);
        CardMemory.recordJournal(() -> old.restore(key));
        try {
            CardMemory.beforeWrite();
        } catch (Torn torn) {
            key.clearKey();
            throw torn;
        }
    }

    public static void ECPublicKey_setW(ECPublicKey key, byte[] b, short o, short l) {
        before(key);
        key.setW(b, o, l);
    }

    public static void ECPrivateKey_setS(ECPrivateKey key, byte[] b, short o, short l) {
        before(key);
        key.setS(b, o, l);
    }

    public static void ECKey_setA(ECKey key, byte[] b, short o, short l) {
        before((Key) key);
        key.setA(b, o, l);
    }

    public static void ECKey_setB(ECKey key, byte[] b, short o, short l) {
        before((Key) key);
        key.setB(b, o, l);
    }

    public static void ECKey_setG(ECKey key, byte[] b, short o, short l) {
        before((Key) key);
        key.setG(b, o, l);
    }

    public static void ECKey_setR(ECKey key, byte[] b, short o, short l) {
        before((Key) key);
        key.setR(b, o, l);
    }

    public static void ECKey_setFieldFP(ECKey key, byte[] b, short o, short l) {
        before((Key) key);
        key.setFieldFP(b, o, l);
    }

    public static void ECKey_setK(ECKey key, short k) {
        before((Key) key);
        key.setK(k);
    }

    public static void RSAPublicKey_setExponent(RSAPublicKey key, byte[] b, short o, short l) {
        before(key);
        key.setExponent(b, o, l);
    }

    public static void Key_clearKey(Key key) {
        before(key);
        key.clearKey();
    }

    /** genKeyPair writes both keys: two writes, public first. */
    public static void KeyPair_genKeyPair(KeyPair pair) {
        Key pub = pair.getPublic();
        Key priv = pair.getPrivate();
        before(pub);
        try {
            before(priv);
        } catch (Torn torn) {
            pub.clearKey();
            throw torn;
        }
        pair.genKeyPair();
    }

    /** What a key holds, read through its interface, and how to put it back. */
    static final class KeySnapshot {
        private final boolean initialized;
        private final byte[][] parts;

        private KeySnapshot(boolean initialized, byte[][] parts) {
            this.initialized = initialized;
            this.parts = parts;
        }

        static KeySnapshot of(Key key) {
            byte[][] parts = new byte[8][];
            if (key instanceof ECKey ec) {
                parts[0] = read(b -> ec.getField(b, (short) 0));
                parts[1] = read(b -> ec.getA(b, (short) 0));
                parts[2] = read(b -> ec.getB(b, (short) 0));
                parts[3] = read(b -> ec.getG(b, (short) 0));
                parts[4] = read(b -> ec.getR(b, (short) 0));
                try {
                    parts[5] = new byte[] {(byte) (ec.getK() >> 8), (byte) ec.getK()};
                } catch (RuntimeException e) {
                    parts[5] = null;
                }
            }
            if (key instanceof ECPublicKey pub) {
                parts[6] = read(b -> pub.getW(b, (short) 0));
            } else if (key instanceof ECPrivateKey priv) {
                parts[6] = read(b -> priv.getS(b, (short) 0));
            } else if (key instanceof RSAPrivateCrtKey crt) { // first: jCardSim's CRT key
                // class is an RSAPublicKey too
                parts[0] = read(b -> crt.getP(b, (short) 0));
                parts[1] = read(b -> crt.getQ(b, (short) 0));
                parts[2] = read(b -> crt.getDP1(b, (short) 0));
                parts[3] = read(b -> crt.getDQ1(b, (short) 0));
                parts[4] = read(b -> crt.getPQ(b, (short) 0));
            } else if (key instanceof RSAPublicKey rsa) {
                parts[6] = read(b -> rsa.getModulus(b, (short) 0));
                parts[7] = read(b -> rsa.getExponent(b, (short) 0));
            }
            return new KeySnapshot(key.isInitialized(), parts);
        }

        interface Reader {
            short read(byte[] buffer);
        }

        private static byte[] read(Reader reader) {
            byte[] buffer = new byte[600];
            try {
                return java.util.Arrays.copyOf(buffer, reader.read(buffer));
            } catch (RuntimeException e) {
                return null;
            }
        }

        byte[][] parts() {
            return parts;
        }

        void restore(Key key) {
            key.clearKey();
            if (key instanceof ECKey ec) {
                if (parts[0] != null) {
                    ec.setFieldFP(parts[0], (short) 0, (short) parts[0].length);
                }
                if (parts[1] != null) {
                    ec.setA(parts[1], (short) 0, (short) parts[1].length);
                }
                if (parts[2] != null) {
                    ec.setB(parts[2], (short) 0, (short) parts[2].length);
                }
                if (parts[3] != null) {
                    ec.setG(parts[3], (short) 0, (short) parts[3].length);
                }
                if (parts[4] != null) {
                    ec.setR(parts[4], (short) 0, (short) parts[4].length);
                }
                if (parts[5] != null) {
                    ec.setK((short) (((parts[5][0] & 0xFF) << 8) | (parts[5][1] & 0xFF)));
                }
            }
            if (!initialized) {
                if (key instanceof RSAPublicKey rsa && !(key instanceof RSAPrivateCrtKey)
                        && parts[7] != null) {
                    rsa.setExponent(parts[7], (short) 0, (short) parts[7].length);
                }
                return;
            }
            if (key instanceof ECPublicKey pub && parts[6] != null) {
                pub.setW(parts[6], (short) 0, (short) parts[6].length);
            } else if (key instanceof ECPrivateKey priv && parts[6] != null) {
                priv.setS(parts[6], (short) 0, (short) parts[6].length);
            } else if (key instanceof RSAPrivateCrtKey crt) {
                crt.setP(parts[0], (short) 0, (short) parts[0].length);
                crt.setQ(parts[1], (short) 0, (short) parts[1].length);
                crt.setDP1(parts[2], (short) 0, (short) parts[2].length);
                crt.setDQ1(parts[3], (short) 0, (short) parts[3].length);
                crt.setPQ(parts[4], (short) 0, (short) parts[4].length);
            } else if (key instanceof RSAPublicKey rsa) {
                if (parts[6] != null) {
                    rsa.setModulus(parts[6], (short) 0, (short) parts[6].length);
                }
                if (parts[7] != null) {
                    rsa.setExponent(parts[7], (short) 0, (short) parts[7].length);
                }
            }
        }
    }
}
