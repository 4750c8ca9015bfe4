package sealcard.applet.smoke;

import com.licel.jcardsim.bouncycastle.asn1.sec.SECNamedCurves;
import com.licel.jcardsim.bouncycastle.asn1.x9.X9ECParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECDomainParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECPublicKeyParameters;
import com.licel.jcardsim.bouncycastle.crypto.signers.ECDSASigner;
import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Random;
import sealcard.applet.Constants;
import sealcard.applet.smoke.SmokeCard.Response;

/**
 * Every ECDSA signature the applet answers must be strict DER (the encoding OpenSSL, and so
 * the host's pyca/cryptography, insists on) and must verify: SIGN DEVICE KEY over many fresh
 * keys and serials (step A), INTERNAL AUTHENTICATE and SIGN HASH many times on one card.
 * About one signature in 128 has an r or s whose top byte is zero, so a few thousand
 * signatures meet that case many times over.
 */
final class SignatureEncodingSmoke {

    private static final int SHORT_LE_MAX = 0x100;
    private static final int EXTENDED_LE_MAX = 0xFFFF;
    /** SIGN DEVICE KEY runs; the EC key and the serial are new in each. */
    private static final int STEP_A_RUNS = 1500;
    /** A new RSA device key every this many step-A runs (RSA-2048 generation is slow). */
    private static final int RSA_KEY_EVERY = 100;
    private static final int INTERNAL_AUTH_RUNS = 1500;
    private static final int SIGN_HASH_RUNS = 1500;
    private static final int SERIAL_LENGTH = 8;
    private static final int CHALLENGE_LENGTH = 16;
    private static final int FIELD_LENGTH = 32;
    private static final int TAG_SEQUENCE = 0x30;
    private static final int TAG_INTEGER = 0x02;
    private static final int SHORT_FORM_LIMIT = 0x80;
    private static final String PIN = "123456";
    private static final String PUK = "87654321";
    private static final X9ECParameters P256 = SECNamedCurves.getByName("secp256r1");
    private static final X9ECParameters K1 = SECNamedCurves.getByName("secp256k1");

    private final AppletSmoke smoke;
    private final Random patterns = new Random(0x5C5CL);

    SignatureEncodingSmoke(AppletSmoke smoke) {
        this.smoke = smoke;
    }

    void runAll() throws Exception {
        keyStorage();
        strictParserRefusesSloppyDer();
        stepA();
        afterPersonalization();
    }

    // ----------------------------------------------------------- key storage

    /**
     * The cause of the rare step-A failure: jCardSim 3.0.6.0's ByteContainer (a key's
     * integer) keeps its array for a shorter new value but reads the whole array back, so a
     * key regenerated (or generated after clearKey) with a scalar below 2^248 signs with
     * {@code S * 256 + stale byte}. Deterministic check of the simulator's replacement; on
     * plain jCardSim (raw mode) it reports the bug.
     */
    void keyStorage() {
        byte[] longer = new byte[FIELD_LENGTH];
        Arrays.fill(longer, (byte) 0xA5);
        byte[] shorter = Arrays.copyOf(longer, FIELD_LENGTH - 1);
        com.licel.jcardsim.crypto.ByteContainer container =
                new com.licel.jcardsim.crypto.ByteContainer();
        container.setBytes(longer);
        container.setBytes(shorter);
        BigInteger back = container.getBigInteger();
        smoke.check("jCardSim key storage: a 31-byte value stored over a 32-byte one reads back"
                + " as itself", back.equals(new BigInteger(1, shorter)), back.toString(16));
    }

    // ------------------------------------------------------------ strict DER

    /**
     * r and s of a strict DER ECDSA signature: one SEQUENCE (short-form length, nothing
     * after it) of exactly two INTEGERs, each in its shortest two's-complement form,
     * positive and below {@code order}; {@code null} for anything else.
     */
    static BigInteger[] strictDer(byte[] der, BigInteger order) {
        if (der.length < 2 || (der[0] & 0xFF) != TAG_SEQUENCE) {
            return null;
        }
        int contents = der[1] & 0xFF;
        if (contents >= SHORT_FORM_LIMIT || contents != der.length - 2) {
            return null;
        }
        BigInteger[] out = new BigInteger[2];
        int at = 2;
        for (int i = 0; i < 2; i++) {
            if (at + 2 > der.length || (der[at] & 0xFF) != TAG_INTEGER) {
                return null;
            }
            int length = der[at + 1] & 0xFF;
            int value = at + 2;
            if (length == 0 || length >= SHORT_FORM_LIMIT || value + length > der.length) {
                return null;
            }
            if ((der[value] & 0x80) != 0) {
                return null; // negative
            }
            if (length > 1 && der[value] == 0 && (der[value + 1] & 0x80) == 0) {
                return null; // a leading zero byte that is not needed
            }
            out[i] = new BigInteger(1, Arrays.copyOfRange(der, value, value + length));
            if (out[i].signum() == 0 || out[i].compareTo(order) >= 0) {
                return null;
            }
            at = value + length;
        }
        return at == der.length ? out : null;
    }

    private void strictParserRefusesSloppyDer() {
        BigInteger n = P256.getN();
        byte[] good = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x7F};
        smoke.check("strict DER check accepts a minimal signature", strictDer(good, n) != null, "");
        byte[][] sloppy = {
            {0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x7F}, // r with a needless 00
            {0x30, 0x06, 0x02, 0x01, (byte) 0x80, 0x02, 0x01, 0x7F}, // r negative (00 pad missing)
            {0x30, (byte) 0x81, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x7F}, // long-form length
            {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01, 0x7F, 0x00}, // trailing byte
            {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x7F}, // r = 0
        };
        for (byte[] der : sloppy) {
            smoke.check("strict DER check refuses " + Apdus.hex(der), strictDer(der, n) == null, "");
        }
    }

    /** How many of a batch of signatures met each case, and which failed. */
    private final class Tally {
        private final String what;
        private int total;
        private int shortInteger;
        private int padded;
        private int notStrict;
        private int notVerified;
        private String firstBad = "";

        Tally(String what) {
            this.what = what;
        }

        void add(byte[] der, BigInteger[] rs, boolean verified) {
            total++;
            if (rs == null) {
                notStrict++;
            } else {
                for (BigInteger value : rs) {
                    if (value.bitLength() <= (FIELD_LENGTH - 1) * 8) {
                        shortInteger++;
                    }
                    if (value.bitLength() == FIELD_LENGTH * 8) {
                        padded++;
                    }
                }
            }
            if (!verified) {
                notVerified++;
            }
            if ((rs == null || !verified) && firstBad.isEmpty()) {
                firstBad = Apdus.hex(der);
            }
        }

        void report() {
            AppletSmoke.fact(String.format("%s: %d signatures, %d integers under 32 bytes, %d"
                    + " with a 00 pad; %d not strict DER, %d not verified", what, total,
                    shortInteger, padded, notStrict, notVerified));
            smoke.check(what + ": every signature is strict DER", notStrict == 0, firstBad);
            smoke.check(what + ": every signature verifies", notVerified == 0, firstBad);
            smoke.check(what + ": integers under 32 bytes were met", shortInteger > 0,
                    shortInteger + " of " + (2 * total));
        }
    }

    private static boolean verify(X9ECParameters curve, byte[] point, byte[] hash,
            BigInteger[] rs) {
        if (rs == null) {
            return false;
        }
        ECDSASigner verifier = new ECDSASigner();
        verifier.init(false, new ECPublicKeyParameters(curve.getCurve().decodePoint(point),
                new ECDomainParameters(curve.getCurve(), curve.getG(), curve.getN(), curve.getH())));
        return verifier.verifySignature(hash, rs[0], rs[1]);
    }

    private static byte[] sha256(byte[]... parts) throws Exception {
        MessageDigest digest = MessageDigest.getInstance("SHA-256");
        for (byte[] part : parts) {
            digest.update(part);
        }
        return digest.digest();
    }

    private static byte[] cmd(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    private static byte[] iso(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_ISO7816, ins, p1, p2, data, le);
    }

    private static Response getData(SmokeCard card, short object) {
        return card.transmitAll(cmd(Constants.INS_GET_DATA, object >> 8, object & 0xFF, null,
                SHORT_LE_MAX));
    }

    // ---------------------------------------------------------------- step A

    private static byte[] signedDeviceKeyMessage(byte[] serial, byte[] rsaTlv) {
        ByteArrayOutputStream message = new ByteArrayOutputStream();
        message.writeBytes(new byte[] {0x53, 0x43, 0x44, 0x4B,
            Constants.SIGNED_DEVICE_KEY_FORMAT_VERSION});
        message.write(serial.length);
        message.writeBytes(serial);
        message.write(rsaTlv, 4, Sealing.MODULUS_LENGTH);
        int exponentLength = rsaTlv[261] & 0xFF;
        message.write(exponentLength);
        message.write(rsaTlv, 262, exponentLength);
        return message.toByteArray();
    }

    private void stepA() throws Exception {
        SmokeCard card = new SmokeCard();
        card.select();
        Tally tally = new Tally("SIGN DEVICE KEY, " + STEP_A_RUNS + " fresh keys and serials");
        byte[] rsa = null;
        for (int run = 0; run < STEP_A_RUNS; run++) {
            if (run % RSA_KEY_EVERY == 0) {
                rsa = card.transmit(Apdus.extendedApdu(Constants.CLA_PROPRIETARY,
                        Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_DEVICE, 0, null,
                        EXTENDED_LE_MAX)).data();
            }
            byte[] point = card.transmitAll(cmd(Constants.INS_GENERATE_KEY_PAIR,
                    Constants.KEY_ISSUER_AUTH, 0, null, SHORT_LE_MAX)).data();
            byte[] serial = card.transmitAll(cmd(Constants.INS_SET_SERIAL,
                    Constants.SERIAL_RANDOM, 0, null, SHORT_LE_MAX)).data();
            Response signed = card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null,
                    SHORT_LE_MAX));
            if (signed.sw() != (Constants.SW_OK & 0xFFFF) || serial.length != SERIAL_LENGTH) {
                smoke.check("step A run " + run + " answered", false,
                        String.format("SW %04X, serial %s", signed.sw(), Apdus.hex(serial)));
                return;
            }
            byte[] hash = sha256(signedDeviceKeyMessage(serial, rsa));
            BigInteger[] rs = strictDer(signed.data(), P256.getN());
            boolean verified = verify(P256, point, hash, rs);
            tally.add(signed.data(), rs, verified);
        }
        tally.report();
    }

    // ------------------------------------------- INTERNAL AUTHENTICATE, SIGN HASH

    private void afterPersonalization() throws Exception {
        PersonalizationSmoke personalization = new PersonalizationSmoke(smoke);
        byte[] serial = {0x5C, 0x00, 0x00, 0x00, 0x02, 0x01};
        PersonalizationSmoke.Card card = personalization.initializedCard(serial);
        PersonalizationSmoke.Sealed sealed = personalization.seal(card, PIN, PUK);
        SmokeCard sc = card.card();
        smoke.expectSw("PERSONALIZE the encoding test card", sc.transmit(Apdus.extendedApdu(
                Constants.CLA_PROPRIETARY, Constants.INS_PERSONALIZE, 0, 0, sealed.blob(),
                Apdus.NO_LE)), Constants.SW_OK);

        Tally auth = new Tally("INTERNAL AUTHENTICATE, " + INTERNAL_AUTH_RUNS + " challenges");
        byte[] prefix = new byte[5 + serial.length];
        prefix[0] = 0x53;
        prefix[1] = 0x43;
        prefix[2] = 0x49;
        prefix[3] = 0x41;
        prefix[4] = (byte) serial.length;
        System.arraycopy(serial, 0, prefix, 5, serial.length);
        for (int run = 0; run < INTERNAL_AUTH_RUNS; run++) {
            byte[] challenge = new byte[CHALLENGE_LENGTH];
            patterns.nextBytes(challenge);
            Response answer = sc.transmitAll(iso(Constants.INS_INTERNAL_AUTHENTICATE, 0, 0,
                    challenge, SHORT_LE_MAX));
            BigInteger[] rs = strictDer(answer.data(), P256.getN());
            auth.add(answer.data(), rs, answer.sw() == (Constants.SW_OK & 0xFFFF)
                    && verify(P256, card.issuerAuthPoint(), sha256(prefix, challenge), rs));
        }
        auth.report();

        Tally sign = new Tally("SIGN HASH, " + SIGN_HASH_RUNS + " hashes");
        smoke.expectSw("VERIFY before SIGN HASH", sc.transmit(iso(Constants.INS_VERIFY, 0,
                Constants.PIN_REF_USER, PIN.getBytes(), Apdus.NO_LE)), Constants.SW_OK);
        byte[] userPoint = getData(sc, Constants.DO_USER_PUBLIC_KEY).data();
        for (int run = 0; run < SIGN_HASH_RUNS; run++) {
            byte[] hash = new byte[FIELD_LENGTH];
            patterns.nextBytes(hash);
            Response answer = sc.transmitAll(iso(Constants.INS_SIGN_HASH,
                    Constants.PSO_P1P2_SIGN >> 8, Constants.PSO_P1P2_SIGN & 0xFF, hash,
                    SHORT_LE_MAX));
            BigInteger[] rs = strictDer(answer.data(), K1.getN());
            boolean lowS = rs != null && rs[1].compareTo(K1.getN().shiftRight(1)) <= 0;
            sign.add(answer.data(), rs, answer.sw() == (Constants.SW_OK & 0xFFFF) && lowS
                    && verify(K1, userPoint, hash, rs));
        }
        sign.report();
    }
}
