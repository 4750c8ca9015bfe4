package sealcard.applet.model;

import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javacard.security.ECPrivateKey;
import javacard.security.ECPublicKey;
import javacard.security.Key;
import javacard.security.KeyPair;
import javacard.security.RSAPrivateCrtKey;
import javacard.security.RSAPublicKey;

/**
 * The card's state as its commands see it, read from the applet's {@code Persistent} object
 * by reflection: the fields that decide what any command does or answers. Left out on
 * purpose, because no command reads them in the state where they could differ: the spare
 * halves of double buffers (certificate slots, issuer key), bytes beyond a stored length,
 * the PERSONALIZE staging buffer, key objects while their presence flag says absent, and
 * the user key and PUK-blocked flag folded into "user key usable" (a blocked PUK makes
 * every use of the key wipe it first). Also {@link #secrets()}: every private key, PIN and
 * PUK the card holds, for the scans of answers.
 */
public final class CardView {

    private final Map<String, String> values;
    private final List<byte[]> secrets;

    private CardView(Map<String, String> values, List<byte[]> secrets) {
        this.values = values;
        this.secrets = secrets;
    }

    /** The state name to value (hex) map; equal maps mean equal card state. */
    public Map<String, String> values() {
        return values;
    }

    /** Private keys (whole and their 16-byte windows are looked for), PINs and PUKs. */
    public List<byte[]> secrets() {
        return secrets;
    }

    public String get(String name) {
        return values.get(name);
    }

    public int state() {
        return Integer.parseInt(values.get("state"), 16);
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof CardView view && view.values.equals(values);
    }

    @Override
    public int hashCode() {
        return values.hashCode();
    }

    /** The names whose values differ between this view and {@code other}. */
    public List<String> differences(CardView other) {
        List<String> out = new ArrayList<>();
        for (String name : values.keySet()) {
            if (!values.get(name).equals(other.values.get(name))) {
                out.add(name);
            }
        }
        return out;
    }

    @Override
    public String toString() {
        return values.toString();
    }

    // ---- reading the applet -------------------------------------------------------------

    public static CardView of(Object applet) {
        Object p = get(applet, "persistent");
        Map<String, String> v = new LinkedHashMap<>();
        List<byte[]> secrets = new ArrayList<>();
        byte state = (byte) get(p, "state");
        v.put("state", hex(state));
        short serialLength = (short) get(p, "serialLength");
        v.put("serial", hex(Arrays.copyOf((byte[]) get(p, "serial"), serialLength)));

        boolean device = (boolean) get(p, "deviceKeyPresent");
        v.put("deviceKey.present", String.valueOf(device));
        KeyPair devicePair = (KeyPair) get(p, "deviceKeyPair");
        if (device) {
            v.put("deviceKey.public", key(devicePair.getPublic()));
            RSAPrivateCrtKey crt = (RSAPrivateCrtKey) devicePair.getPrivate();
            String priv = key(crt);
            v.put("deviceKey.private", priv);
            addKeySecrets(secrets, crt);
        }
        boolean auth = (boolean) get(p, "issuerAuthKeyPresent");
        v.put("issuerAuthKey.present", String.valueOf(auth));
        KeyPair authPair = (KeyPair) get(p, "issuerAuthKeyPair");
        if (auth) {
            v.put("issuerAuthKey.public", key(authPair.getPublic()));
            v.put("issuerAuthKey.private", key(authPair.getPrivate()));
            addKeySecrets(secrets, authPair.getPrivate());
        }
        byte active = (byte) get(p, "issuerKeyActive");
        v.put("issuerKey", active == 0 ? "none"
                : key((Key) get(p, active == 2 ? "issuerKeySecond" : "issuerKeyFirst")));
        v.put("deviceKeyCertificate", certificate(get(p, "deviceKeyCertificate")));
        v.put("issuerAuthKeyCertificate", certificate(get(p, "issuerAuthKeyCertificate")));
        short sdkLength = (short) get(p, "signedDeviceKeyLength");
        v.put("signedDeviceKey", hex(Arrays.copyOf((byte[]) get(p, "signedDeviceKey"),
                sdkLength)));

        ModelOwnerPIN pin = (ModelOwnerPIN) get(p, "pin");
        ModelOwnerPIN puk = (ModelOwnerPIN) get(p, "puk");
        boolean userKey = (boolean) get(p, "userKeyPresent");
        boolean usable = userKey && puk.getTriesRemaining() != 0;
        v.put("userKey.usable", String.valueOf(usable));
        ECPrivateKey user = (ECPrivateKey) get(p, "userPrivateKey");
        if (usable && user != null) {
            v.put("userKey.private", key(user));
        }
        if (user != null && user.isInitialized()) {
            addKeySecrets(secrets, user);
        }
        short pointLength = (short) get(p, "userPublicPointLength");
        v.put("userPublicPoint", hex(Arrays.copyOf((byte[]) get(p, "userPublicPoint"),
                pointLength)));
        if (state == 0x07 || state == 0x0F) {
            v.put("deviceAuthKey", key((Key) get(p, "deviceAuthKey")));
        }
        boolean pinSet = (boolean) get(p, "pinSet");
        v.put("pin.set", String.valueOf(pinSet));
        if (pinSet) {
            v.put("pin.value", hex(pin.storedValue()));
            v.put("pin.tries", String.valueOf(pin.getTriesRemaining()));
            v.put("puk.value", hex(puk.storedValue()));
            v.put("puk.tries", String.valueOf(puk.getTriesRemaining()));
            secrets.add(pin.storedValue());
            secrets.add(puk.storedValue());
        }
        byte stagedPinLength = (byte) get(p, "stagedPinLength");
        byte stagedPukLength = (byte) get(p, "stagedPukLength");
        byte[] stagedPin = Arrays.copyOf((byte[]) get(p, "stagedPin"), stagedPinLength);
        byte[] stagedPuk = Arrays.copyOf((byte[]) get(p, "stagedPuk"), stagedPukLength);
        v.put("staged.pin", hex(stagedPin));
        v.put("staged.puk", hex(stagedPuk));
        if (stagedPinLength > 0) {
            secrets.add(stagedPin);
            secrets.add(stagedPuk);
        }
        return new CardView(v, secrets);
    }

    /** PIN tries left ({@code -1} when no PIN is set). */
    public int pinTries() {
        String t = values.get("pin.tries");
        return t == null ? -1 : Integer.parseInt(t);
    }

    /** PUK tries left ({@code -1} when no PIN is set). */
    public int pukTries() {
        String t = values.get("puk.tries");
        return t == null ? -1 : Integer.parseInt(t);
    }

    private static void addKeySecrets(List<byte[]> secrets, Key key) {
        if (key instanceof RSAPrivateCrtKey crt) {
            for (byte[] part : KeyCalls.KeySnapshot.of(crt).parts()) {
                if (part != null && part.length > 0) {
                    secrets.add(part);
                }
            }
        } else if (key instanceof ECPrivateKey ec) {
            byte[] s = new byte[64];
            short n = ec.getS(s, (short) 0);
            secrets.add(Arrays.copyOf(s, n));
        }
    }

    private static String certificate(Object slot) {
        byte active = (byte) get(slot, "active");
        if (active == 0) {
            return "none";
        }
        short length = (short) get(slot, "length");
        byte[] current = (byte[]) get(slot, active == 2 ? "second" : "first");
        return hex(Arrays.copyOf(current, length));
    }

    private static String key(Key key) {
        if (!key.isInitialized()) {
            return "uninitialized";
        }
        StringBuilder out = new StringBuilder();
        byte[] buffer = new byte[600];
        if (key instanceof ECPublicKey ec) {
            out.append(hex(Arrays.copyOf(buffer, ec.getW(buffer, (short) 0))));
        } else if (key instanceof ECPrivateKey ec) {
            out.append(hex(Arrays.copyOf(buffer, ec.getS(buffer, (short) 0))));
        } else if (key instanceof RSAPrivateCrtKey crt) { // before RSAPublicKey: jCardSim's
            // CRT key class implements that interface too
            out.append(hex(Arrays.copyOf(buffer, crt.getP(buffer, (short) 0))));
            out.append('/').append(hex(Arrays.copyOf(buffer, crt.getQ(buffer, (short) 0))));
            out.append('/').append(hex(Arrays.copyOf(buffer, crt.getDP1(buffer, (short) 0))));
            out.append('/').append(hex(Arrays.copyOf(buffer, crt.getDQ1(buffer, (short) 0))));
            out.append('/').append(hex(Arrays.copyOf(buffer, crt.getPQ(buffer, (short) 0))));
        } else if (key instanceof RSAPublicKey rsa) {
            out.append(hex(Arrays.copyOf(buffer, rsa.getModulus(buffer, (short) 0))));
            out.append('/').append(hex(Arrays.copyOf(buffer, rsa.getExponent(buffer, (short) 0))));
        } else {
            out.append(key.getClass().getSimpleName());
        }
        return out.toString();
    }

    private static final Map<String, Field> FIELDS = new java.util.HashMap<>();

    private static Object get(Object owner, String name) {
        try {
            String key = owner.getClass().getName() + "#" + name;
            Field field = FIELDS.get(key);
            if (field == null) {
                field = owner.getClass().getDeclaredField(name);
                field.setAccessible(true);
                FIELDS.put(key, field);
            }
            return field.get(owner);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("no field " + name + " in "
                    + owner.getClass().getName(), e);
        }
    }

    private static final char[] DIGITS = "0123456789ABCDEF".toCharArray();

    static String hex(byte value) {
        return hex(new byte[] {value});
    }

    public static String hex(byte[] data) {
        char[] out = new char[data.length * 2];
        for (int i = 0; i < data.length; i++) {
            out[2 * i] = DIGITS[(data[i] >> 4) & 0xF];
            out[2 * i + 1] = DIGITS[data[i] & 0xF];
        }
        return new String(out);
    }
}
