package sealcard.applet.smoke;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.security.AlgorithmParameters;
import java.security.KeyFactory;
import java.security.KeyPairGenerator;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.ECParameterSpec;
import java.security.spec.ECPoint;
import java.security.spec.ECPublicKeySpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import sealcard.applet.Constants;
import sealcard.applet.smoke.SmokeCard.Response;

/**
 * In-JVM smoke test of the applet on jCardSim: every command once with success and with a
 * failure (issue 3's commands in {@link PersonalizationSmoke}), long answers, chaining, extended length, atomicity after a reset, and the
 * randomness facts of the simulator (two cards' keys, repeated ECDSA signatures).
 *
 * <p>Modes: {@code fixed} (default; jCardSim with the simulator's randomness fix on the
 * class path and {@code com.licel.jcardsim.randomdata.secure=1}): every check must hold, the
 * exit status is 1 on any mismatch. {@code raw} (plain jCardSim): only reports the
 * randomness facts, exit status 0.
 */
public final class AppletSmoke {

    private static final String SECURE_RANDOMDATA_PROPERTY = "com.licel.jcardsim.randomdata.secure";
    private static final int RSA_KEYGEN_RUNS = 20;
    private static final int EC_KEYGEN_RUNS = 20;
    private static final int SHORT_LE_MAX = 0x100;
    /** Extended Le FFFF: jCardSim 3.0.6.0 reads 0000 (65536) as 0, see the FACT line. */
    private static final int EXTENDED_LE_MAX = 0xFFFF;
    private static final int RSA_TLV_LENGTH = 4 + 256 + 2 + 3;
    private static final int CHUNK = 200;

    private final List<String> failures = new ArrayList<>();
    private final boolean reportOnly;
    private final ECParameterSpec p256;
    private final Random patterns = new Random(20261127L);

    private AppletSmoke(boolean reportOnly) throws Exception {
        this.reportOnly = reportOnly;
        AlgorithmParameters parameters = AlgorithmParameters.getInstance("EC");
        parameters.init(new ECGenParameterSpec("secp256r1"));
        this.p256 = parameters.getParameterSpec(ECParameterSpec.class);
    }

    public static void main(String[] args) throws Exception {
        boolean raw = args.length > 0 && args[0].equals("raw");
        if (!raw) {
            System.setProperty(SECURE_RANDOMDATA_PROPERTY, "1");
        }
        AppletSmoke smoke = new AppletSmoke(raw);
        System.out.println("== sealcard applet smoke test on jCardSim, mode "
                + (raw ? "raw (plain jCardSim, report only)" : "fixed"));
        System.out.println("   randomdata.secure=" + System.getProperty(SECURE_RANDOMDATA_PROPERTY)
                + ", SecureRandomNullProvider from "
                + Class.forName("com.licel.jcardsim.crypto.SecureRandomNullProvider")
                        .getProtectionDomain().getCodeSource().getLocation());
        if (raw) {
            smoke.randomnessFacts();
            new SignatureEncodingSmoke(smoke).keyStorage();
            System.out.println("== raw mode: facts reported, nothing enforced");
            return;
        }
        smoke.runAll();
        if (!smoke.failures.isEmpty()) {
            System.out.println("== FAILED: " + smoke.failures.size() + " mismatch(es)");
            for (String failure : smoke.failures) {
                System.out.println("   " + failure);
            }
            System.exit(1);
        }
        System.out.println("== all checks passed");
    }

    // ------------------------------------------------------------------ helpers

    void check(String what, boolean ok, String detail) {
        String line = (ok ? "PASS " : (reportOnly ? "NOTE " : "FAIL ")) + what
                + (detail.isEmpty() ? "" : "  [" + detail + "]");
        System.out.println(line);
        if (!ok && !reportOnly) {
            failures.add(line);
        }
    }

    void expectSw(String what, Response response, int sw) {
        int expected = sw & 0xFFFF;
        check(what, response.sw() == expected,
                String.format("SW %04X, expected %04X", response.sw(), expected));
    }

    private static int u16(short value) {
        return value & 0xFFFF;
    }

    static void fact(String text) {
        System.out.println("FACT " + text);
    }

    private static byte[] cmd(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    private static byte[] ext(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.extendedApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    private static Response getData(SmokeCard card, short object) {
        return card.transmitAll(cmd(Constants.INS_GET_DATA, object >> 8, object & 0xFF, null,
                SHORT_LE_MAX));
    }

    private static Response generate(SmokeCard card, byte key) {
        return card.transmitAll(cmd(Constants.INS_GENERATE_KEY_PAIR, key, 0, null, SHORT_LE_MAX));
    }

    private byte[] derSequence(int contentLength) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(0x30);
        if (contentLength < 0x80) {
            out.write(contentLength);
        } else if (contentLength < 0x100) {
            out.write(0x81);
            out.write(contentLength);
        } else {
            out.write(0x82);
            out.write(contentLength >> 8);
            out.write(contentLength & 0xFF);
        }
        byte[] content = new byte[contentLength];
        patterns.nextBytes(content);
        out.writeBytes(content);
        return out.toByteArray();
    }

    private boolean onP256(byte[] point) {
        if (point.length != Constants.EC_POINT_LENGTH || point[0] != Constants.EC_POINT_UNCOMPRESSED) {
            return false;
        }
        BigInteger x = new BigInteger(1, Arrays.copyOfRange(point, 1, 33));
        BigInteger y = new BigInteger(1, Arrays.copyOfRange(point, 33, 65));
        BigInteger p = ((java.security.spec.ECFieldFp) p256.getCurve().getField()).getP();
        BigInteger left = y.modPow(BigInteger.TWO, p);
        BigInteger right = x.pow(3).add(p256.getCurve().getA().multiply(x))
                .add(p256.getCurve().getB()).mod(p);
        return left.equals(right);
    }

    private ECPublicKey javaKey(byte[] point) throws Exception {
        BigInteger x = new BigInteger(1, Arrays.copyOfRange(point, 1, 33));
        BigInteger y = new BigInteger(1, Arrays.copyOfRange(point, 33, 65));
        return (ECPublicKey) KeyFactory.getInstance("EC")
                .generatePublic(new ECPublicKeySpec(new ECPoint(x, y), p256));
    }

    private static byte[] modulusOf(byte[] rsaTlv) {
        return Arrays.copyOfRange(rsaTlv, 4, 4 + 256);
    }

    private byte[] p256Point() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        ECPublicKey key = (ECPublicKey) generator.generateKeyPair().getPublic();
        byte[] point = new byte[65];
        point[0] = Constants.EC_POINT_UNCOMPRESSED;
        byte[] x = key.getW().getAffineX().toByteArray();
        byte[] y = key.getW().getAffineY().toByteArray();
        System.arraycopy(x, Math.max(0, x.length - 32), point, 1 + Math.max(0, 32 - x.length),
                Math.min(32, x.length));
        System.arraycopy(y, Math.max(0, y.length - 32), point, 33 + Math.max(0, 32 - y.length),
                Math.min(32, y.length));
        return point;
    }

    static double medianMillis(long[] nanos) {
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
        return median / 1e6;
    }

    private static byte[] signedDeviceKeyMessage(byte[] serial, byte[] rsaTlv) {
        ByteArrayOutputStream message = new ByteArrayOutputStream();
        message.writeBytes(new byte[] {0x53, 0x43, 0x44, 0x4B, Constants.SIGNED_DEVICE_KEY_FORMAT_VERSION});
        message.write(serial.length);
        message.writeBytes(serial);
        message.writeBytes(modulusOf(rsaTlv));
        int exponentLength = rsaTlv[261] & 0xFF;
        message.write(exponentLength);
        message.write(rsaTlv, 262, exponentLength);
        return message.toByteArray();
    }

    private static BigInteger signatureR(byte[] der) {
        int rLength = der[3] & 0xFF;
        return new BigInteger(1, Arrays.copyOfRange(der, 4, 4 + rLength));
    }

    // ------------------------------------------------------------- randomness

    private void randomnessFacts() {
        SmokeCard first = new SmokeCard();
        SmokeCard second = new SmokeCard();
        first.select();
        second.select();
        byte[] rsaFirst = generate(first, Constants.KEY_DEVICE).data();
        byte[] rsaSecond = generate(second, Constants.KEY_DEVICE).data();
        check("two cards get different RSA device keys", !Arrays.equals(rsaFirst, rsaSecond), "");
        byte[] ecFirst = generate(first, Constants.KEY_ISSUER_AUTH).data();
        byte[] ecSecond = generate(second, Constants.KEY_ISSUER_AUTH).data();
        check("two cards get different EC issuer-auth keys", !Arrays.equals(ecFirst, ecSecond), "");
        fact("fingerprints (compare across runs): RSA " + Apdus.hex(Arrays.copyOfRange(rsaFirst, 4, 12))
                + " / " + Apdus.hex(Arrays.copyOfRange(rsaSecond, 4, 12)) + ", EC "
                + Apdus.hex(Arrays.copyOfRange(ecFirst, 1, 9)) + " / "
                + Apdus.hex(Arrays.copyOfRange(ecSecond, 1, 9)));
        byte[] serialFirst = first.transmitAll(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_RANDOM, 0, null, SHORT_LE_MAX)).data();
        byte[] serialSecond = second.transmitAll(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_RANDOM, 0, null, SHORT_LE_MAX)).data();
        check("two cards draw different random serials", !Arrays.equals(serialFirst, serialSecond),
                Apdus.hex(serialFirst) + " / " + Apdus.hex(serialSecond));
        byte[] sigOne = first.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null,
                SHORT_LE_MAX)).data();
        byte[] sigTwo = first.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null,
                SHORT_LE_MAX)).data();
        check("ECDSA signatures of the same message differ", !Arrays.equals(sigOne, sigTwo), "");
        check("ECDSA nonces differ (r values)", !signatureR(sigOne).equals(signatureR(sigTwo)), "");
    }

    // ------------------------------------------------------------------ all

    private void runAll() throws Exception {
        randomnessFacts();
        SmokeCard card = new SmokeCard();
        selectAndStatus(card);
        generateKeys(card);
        serial(card);
        issuerKey(card);
        certificates(card);
        signDeviceKey(card);
        longAnswersAndDispatch(card);
        regeneration();
        closeInitialization(card);
        timings();
        new PersonalizationSmoke(this).runAll();
        new SignatureEncodingSmoke(this).runAll();
    }

    private void selectAndStatus(SmokeCard card) {
        Response select = card.select();
        expectSw("SELECT", select, Constants.SW_OK);
        byte[] tlv = select.data();
        check("SELECT answer: version, state blank, capabilities",
                tlv.length == 11 && tlv[0] == Constants.TAG_VERSION
                        && tlv[2] == (byte) (Constants.APPLET_VERSION >> 8)
                        && tlv[3] == (byte) Constants.APPLET_VERSION
                        && tlv[4] == Constants.TAG_STATE && tlv[6] == Constants.STATE_BLANK
                        && tlv[7] == Constants.TAG_CAPABILITIES,
                Apdus.hex(tlv));
        int caps = ((tlv[9] & 0xFF) << 8) | (tlv[10] & 0xFF);
        fact(String.format("capabilities 0x%04X: TRNG=%b OAEP_SHA256=%b ECDSA_PRECOMPUTED=%b"
                + " EXTENDED_LENGTH=%b SECP256K1=%b", caps,
                (caps & Constants.CAP_TRNG) != 0, (caps & Constants.CAP_RSA_OAEP_SHA256) != 0,
                (caps & Constants.CAP_ECDSA_PRECOMPUTED) != 0,
                (caps & Constants.CAP_EXTENDED_LENGTH) != 0, (caps & Constants.CAP_SECP256K1) != 0));
        check("CAP_EXTENDED_LENGTH always set", (caps & Constants.CAP_EXTENDED_LENGTH) != 0, "");

        Response noLe = card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816, Constants.INS_SELECT,
                Constants.SELECT_P1_BY_NAME, 0, SmokeCard.APPLET_AID, Apdus.NO_LE));
        fact(String.format("SELECT without Le answers %d bytes, SW %04X", noLe.data().length, noLe.sw()));
        if (noLe.sw1() == 0x61) {
            Response rest = card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816,
                    Constants.INS_GET_RESPONSE, 0, 0, null, noLe.sw() & 0xFF));
            check("GET RESPONSE after SELECT without Le gives the TLVs",
                    rest.sw() == u16(Constants.SW_OK) && Arrays.equals(rest.data(), tlv), Apdus.hex(rest.data()));
        }
        Response status = getData(card, Constants.DO_STATUS);
        check("GET DATA DO_STATUS = SELECT answer",
                status.sw() == u16(Constants.SW_OK) && Arrays.equals(status.data(), tlv), "");
        expectSw("GET DATA DO_SERIAL before set", getData(card, Constants.DO_SERIAL),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        expectSw("GET DATA unknown object", card.transmit(cmd(Constants.INS_GET_DATA, 0x01, 0x99,
                null, SHORT_LE_MAX)), Constants.SW_INCORRECT_P1P2);
        expectSw("GET DATA with data", card.transmit(cmd(Constants.INS_GET_DATA, 0x01, 0x02,
                new byte[] {1}, SHORT_LE_MAX)), Constants.SW_WRONG_LENGTH);
    }

    private void generateKeys(SmokeCard card) {
        expectSw("GENERATE KEY PAIR bad P1", card.transmit(cmd(Constants.INS_GENERATE_KEY_PAIR, 3, 0,
                null, SHORT_LE_MAX)), Constants.SW_INCORRECT_P1P2);
        expectSw("GENERATE KEY PAIR with data", card.transmit(cmd(Constants.INS_GENERATE_KEY_PAIR,
                Constants.KEY_DEVICE, 0, new byte[] {1}, SHORT_LE_MAX)), Constants.SW_WRONG_LENGTH);
        expectSw("PUT CERTIFICATE before its key exists",
                card.transmit(ext(Constants.INS_PUT_CERTIFICATE, Constants.CERT_DEVICE_KEY, 0,
                        derSequence(10), Apdus.NO_LE)), Constants.SW_CONDITIONS_NOT_SATISFIED);

        Response first = card.transmit(cmd(Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_DEVICE, 0,
                null, SHORT_LE_MAX));
        check("GENERATE device key, short Le 00: 256 bytes then 61 09",
                first.data().length == 256 && first.sw() == (u16(Constants.SW_BYTES_REMAINING) | 9),
                String.format("%d bytes, SW %04X", first.data().length, first.sw()));
        Response rest = card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816,
                Constants.INS_GET_RESPONSE, 0, 0, null, 9));
        byte[] rsa = new byte[first.data().length + rest.data().length];
        System.arraycopy(first.data(), 0, rsa, 0, first.data().length);
        System.arraycopy(rest.data(), 0, rsa, first.data().length, rest.data().length);
        expectSw("GET RESPONSE completes the RSA key", rest, Constants.SW_OK);
        checkRsaTlv("device key", rsa);
        Response stored = getData(card, Constants.DO_DEVICE_PUBLIC_KEY);
        check("GET DATA DO_DEVICE_PUBLIC_KEY = generated key", Arrays.equals(stored.data(), rsa), "");

        Response extended = card.transmit(ext(Constants.INS_GET_DATA, 0x01, 0x10, null, EXTENDED_LE_MAX));
        check("extended Le: the whole RSA key in one answer",
                extended.sw() == u16(Constants.SW_OK) && Arrays.equals(extended.data(), rsa),
                String.format("%d bytes, SW %04X", extended.data().length, extended.sw()));

        Response zero = card.transmit(ext(Constants.INS_GET_DATA, 0x01, 0x10, null, 0x10000));
        fact(String.format("extended Le 0000 (65536): %d bytes, SW %04X", zero.data().length, zero.sw()));
        Response extendedGenerate = card.transmit(ext(Constants.INS_GENERATE_KEY_PAIR,
                Constants.KEY_DEVICE, 0, null, EXTENDED_LE_MAX));
        check("GENERATE device key with extended Le: whole answer, 9000",
                extendedGenerate.sw() == u16(Constants.SW_OK)
                        && extendedGenerate.data().length == RSA_TLV_LENGTH, "");
        check("regenerated device key differs", !Arrays.equals(extendedGenerate.data(), rsa), "");

        Response ec = generate(card, Constants.KEY_ISSUER_AUTH);
        expectSw("GENERATE issuer-auth key", ec, Constants.SW_OK);
        check("issuer-auth key is a point on P-256", onP256(ec.data()), Apdus.hex(ec.data()));
        check("GET DATA DO_ISSUER_AUTH_PUBLIC_KEY = generated key",
                Arrays.equals(getData(card, Constants.DO_ISSUER_AUTH_PUBLIC_KEY).data(), ec.data()), "");
    }

    private void checkRsaTlv(String what, byte[] rsa) {
        boolean framing = rsa.length == RSA_TLV_LENGTH && rsa[0] == Constants.TAG_RSA_MODULUS
                && (rsa[1] & 0xFF) == 0x82 && rsa[2] == 0x01 && rsa[3] == 0x00
                && rsa[260] == Constants.TAG_RSA_EXPONENT && rsa[261] == 3;
        check(what + ": RSA TLV framing", framing, rsa.length + " bytes");
        if (framing) {
            BigInteger modulus = new BigInteger(1, modulusOf(rsa));
            BigInteger exponent = new BigInteger(1, Arrays.copyOfRange(rsa, 262, 265));
            check(what + ": 2048-bit odd modulus, e = 65537", modulus.bitLength() == 2048
                    && modulus.testBit(0) && exponent.equals(BigInteger.valueOf(65537)), "");
        }
    }

    private void serial(SmokeCard card) {
        expectSw("SET SERIAL 3 bytes", card.transmit(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_GIVEN, 0, new byte[3], Apdus.NO_LE)), Constants.SW_WRONG_LENGTH);
        expectSw("SET SERIAL 17 bytes", card.transmit(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_GIVEN, 0, new byte[17], Apdus.NO_LE)), Constants.SW_WRONG_LENGTH);
        expectSw("SET SERIAL bad P1", card.transmit(cmd(Constants.INS_SET_SERIAL, 2, 0, null,
                Apdus.NO_LE)), Constants.SW_INCORRECT_P1P2);
        expectSw("SET SERIAL random with data", card.transmit(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_RANDOM, 0, new byte[4], SHORT_LE_MAX)), Constants.SW_WRONG_LENGTH);
        expectSw("GET DATA DO_SERIAL still unset after failures", getData(card, Constants.DO_SERIAL),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        Response random = card.transmitAll(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_RANDOM, 0,
                null, SHORT_LE_MAX));
        check("SET SERIAL random: 8 bytes", random.sw() == u16(Constants.SW_OK)
                && random.data().length == Constants.RANDOM_SERIAL_LENGTH, Apdus.hex(random.data()));
        check("GET DATA DO_SERIAL = random serial",
                Arrays.equals(getData(card, Constants.DO_SERIAL).data(), random.data()), "");
        byte[] given = {0x53, 0x43, 0x00, 0x00, 0x00, 0x01};
        expectSw("SET SERIAL given", card.transmit(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_GIVEN, 0, given, Apdus.NO_LE)), Constants.SW_OK);
        check("GET DATA DO_SERIAL = given serial",
                Arrays.equals(getData(card, Constants.DO_SERIAL).data(), given), "");
        byte[] select = card.select().data();
        check("SELECT answer carries TAG_SERIAL", select.length == 11 + 2 + given.length
                && select[11] == Constants.TAG_SERIAL, Apdus.hex(select));
    }

    private void issuerKey(SmokeCard card) throws Exception {
        byte[] point = p256Point();
        expectSw("PUT ISSUER KEY 64 bytes", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0,
                Arrays.copyOf(point, 64), Apdus.NO_LE)), Constants.SW_WRONG_LENGTH);
        byte[] compressedPrefix = point.clone();
        compressedPrefix[0] = 0x05;
        expectSw("PUT ISSUER KEY not 04-prefixed", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY,
                0, 0, compressedPrefix, Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("PUT ISSUER KEY bad P1P2", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 1, 0,
                point, Apdus.NO_LE)), Constants.SW_INCORRECT_P1P2);
        expectSw("GET DATA DO_ISSUER_PUBLIC_KEY before", getData(card, Constants.DO_ISSUER_PUBLIC_KEY),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        expectSw("PUT ISSUER KEY", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0, point,
                Apdus.NO_LE)), Constants.SW_OK);
        check("GET DATA DO_ISSUER_PUBLIC_KEY = injected point",
                Arrays.equals(getData(card, Constants.DO_ISSUER_PUBLIC_KEY).data(), point), "");
        byte[] offCurve = new byte[65];
        offCurve[0] = Constants.EC_POINT_UNCOMPRESSED;
        offCurve[32] = 1;
        offCurve[64] = 1;
        byte[] flippedY = point.clone();
        flippedY[64] ^= 1;
        for (byte[] bad : new byte[][] {offCurve, flippedY}) {
            Response refused = card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0, bad,
                    Apdus.NO_LE));
            expectSw("PUT ISSUER KEY off P-256 refused " + Apdus.hex(Arrays.copyOfRange(bad, 57, 65)),
                    refused, Constants.SW_WRONG_DATA);
            check("refused point leaves the previous issuer key",
                    Arrays.equals(getData(card, Constants.DO_ISSUER_PUBLIC_KEY).data(), point), "");
        }
    }

    private void certificates(SmokeCard card) {
        byte[] big = derSequence(1000);
        expectSw("PUT CERTIFICATE (extended APDU, 1004 bytes)", card.transmit(ext(
                Constants.INS_PUT_CERTIFICATE, Constants.CERT_DEVICE_KEY, 0, big, Apdus.NO_LE)),
                Constants.SW_OK);
        Response whole = card.transmit(ext(Constants.INS_GET_DATA, 0x01, 0x20, null, EXTENDED_LE_MAX));
        check("GET DATA cert, extended Le: whole certificate",
                whole.sw() == u16(Constants.SW_OK) && Arrays.equals(whole.data(), big), whole.data().length + " bytes");
        Response first = card.transmit(cmd(Constants.INS_GET_DATA, 0x01, 0x20, null, SHORT_LE_MAX));
        check("GET DATA cert, short Le: 256 bytes then 61 00",
                first.data().length == 256 && first.sw() == u16(Constants.SW_BYTES_REMAINING),
                String.format("SW %04X", first.sw()));
        check("GET DATA cert via GET RESPONSE reassembles",
                Arrays.equals(getData(card, Constants.DO_DEVICE_KEY_CERT).data(), big), "");

        byte[] chained = derSequence(600);
        for (int at = 0; at < chained.length; at += CHUNK) {
            boolean last = at + CHUNK >= chained.length;
            byte[] chunk = Arrays.copyOfRange(chained, at, Math.min(chained.length, at + CHUNK));
            Response response = card.transmit(Apdus.shortApdu(last ? Constants.CLA_PROPRIETARY
                    : Constants.CLA_PROPRIETARY_CHAINING, Constants.INS_PUT_CERTIFICATE,
                    Constants.CERT_ISSUER_AUTH_KEY, 0, chunk, Apdus.NO_LE));
            expectSw("PUT CERTIFICATE chained chunk at " + at, response, Constants.SW_OK);
        }
        check("chained certificate stored", Arrays.equals(getData(card,
                Constants.DO_ISSUER_AUTH_KEY_CERT).data(), chained), "");

        // Failures leave the current certificate.
        byte[] notDer = derSequence(50);
        notDer[0] = 0x31;
        expectSw("PUT CERTIFICATE not a SEQUENCE", card.transmit(cmd(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, notDer, Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        byte[] trailing = Arrays.copyOf(derSequence(50), 53);
        expectSw("PUT CERTIFICATE with trailing bytes", card.transmit(cmd(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, trailing, Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("PUT CERTIFICATE over MAX_CERT_LENGTH", card.transmit(ext(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, derSequence(1100), Apdus.NO_LE)), Constants.SW_NOT_ENOUGH_MEMORY);
        expectSw("PUT CERTIFICATE empty", card.transmit(cmd(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, null, Apdus.NO_LE)), Constants.SW_WRONG_LENGTH);
        expectSw("PUT CERTIFICATE bad P1", card.transmit(cmd(Constants.INS_PUT_CERTIFICATE, 3, 0,
                derSequence(10), Apdus.NO_LE)), Constants.SW_INCORRECT_P1P2);

        byte[] other = derSequence(500);
        expectSw("chain: first chunk", card.transmit(Apdus.shortApdu(Constants.CLA_PROPRIETARY_CHAINING,
                Constants.INS_PUT_CERTIFICATE, Constants.CERT_DEVICE_KEY, 0,
                Arrays.copyOf(other, CHUNK), Apdus.NO_LE)), Constants.SW_OK);
        expectSw("chain: chunk with another P1", card.transmit(Apdus.shortApdu(Constants.CLA_PROPRIETARY,
                Constants.INS_PUT_CERTIFICATE, Constants.CERT_ISSUER_AUTH_KEY, 0,
                Arrays.copyOfRange(other, CHUNK, 2 * CHUNK), Apdus.NO_LE)),
                Constants.SW_LAST_COMMAND_OF_CHAIN_EXPECTED);
        expectSw("chaining bit on GET DATA", card.transmit(Apdus.shortApdu(
                Constants.CLA_PROPRIETARY_CHAINING, Constants.INS_GET_DATA, 0x01, 0x01, null,
                SHORT_LE_MAX)), Constants.SW_CHAINING_NOT_SUPPORTED);
        expectSw("chain: a new chain after the refused one", card.transmit(Apdus.shortApdu(
                Constants.CLA_PROPRIETARY_CHAINING, Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, Arrays.copyOf(other, CHUNK), Apdus.NO_LE)), Constants.SW_OK);
        card.reset();
        card.select();
        Response afterReset = card.transmit(ext(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, Arrays.copyOfRange(other, CHUNK, other.length),
                Apdus.NO_LE));
        expectSw("chain: last chunk after a reset is a fresh (malformed) certificate", afterReset,
                Constants.SW_WRONG_DATA);
        check("after all failures and a reset mid-chain the old certificate is current",
                Arrays.equals(getData(card, Constants.DO_DEVICE_KEY_CERT).data(), big), "");
    }

    private void signDeviceKey(SmokeCard card) throws Exception {
        expectSw("SIGN DEVICE KEY bad P1P2", card.transmit(cmd(Constants.INS_SIGN_DEVICE_KEY, 1, 0,
                null, SHORT_LE_MAX)), Constants.SW_INCORRECT_P1P2);
        SmokeCard blank = new SmokeCard();
        blank.select();
        expectSw("SIGN DEVICE KEY without keys", blank.transmit(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0,
                null, SHORT_LE_MAX)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        card.select();
        for (short object : new short[] {Constants.DO_SERIAL, Constants.DO_DEVICE_PUBLIC_KEY,
                Constants.DO_ISSUER_AUTH_PUBLIC_KEY}) {
            expectSw(String.format("before SIGN DEVICE KEY: object %04X present", object),
                    getData(card, object), Constants.SW_OK);
        }
        Response signed = card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null, SHORT_LE_MAX));
        expectSw("SIGN DEVICE KEY", signed, Constants.SW_OK);
        byte[] serial = getData(card, Constants.DO_SERIAL).data();
        byte[] rsa = getData(card, Constants.DO_DEVICE_PUBLIC_KEY).data();
        byte[] point = getData(card, Constants.DO_ISSUER_AUTH_PUBLIC_KEY).data();
        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify(javaKey(point));
        verifier.update(signedDeviceKeyMessage(serial, rsa));
        check("signed device key verifies (SCDK message, issuer-auth key)", verifier.verify(signed.data()),
                Apdus.hex(signed.data()));
        check("GET DATA DO_SIGNED_DEVICE_KEY = answer",
                Arrays.equals(getData(card, Constants.DO_SIGNED_DEVICE_KEY).data(), signed.data()), "");
        expectSw("SET SERIAL again", card.transmit(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN,
                0, new byte[] {1, 2, 3, 4, 5}, Apdus.NO_LE)), Constants.SW_OK);
        expectSw("new serial discards the signed device key", getData(card, Constants.DO_SIGNED_DEVICE_KEY),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        expectSw("SIGN DEVICE KEY again", card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null,
                SHORT_LE_MAX)), Constants.SW_OK);
    }

    private void longAnswersAndDispatch(SmokeCard card) {
        expectSw("GET RESPONSE with nothing pending", card.transmit(Apdus.shortApdu(
                Constants.CLA_ISO7816, Constants.INS_GET_RESPONSE, 0, 0, null, SHORT_LE_MAX)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        Response partial = card.transmit(cmd(Constants.INS_GET_DATA, 0x01, 0x20, null, SHORT_LE_MAX));
        expectSw("long answer pending", partial, Constants.SW_BYTES_REMAINING);
        getData(card, Constants.DO_STATUS);
        expectSw("another command discards the pending answer", card.transmit(Apdus.shortApdu(
                Constants.CLA_ISO7816, Constants.INS_GET_RESPONSE, 0, 0, null, SHORT_LE_MAX)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        card.transmit(cmd(Constants.INS_GET_DATA, 0x01, 0x20, null, SHORT_LE_MAX));
        expectSw("GET RESPONSE bad P1P2", card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816,
                Constants.INS_GET_RESPONSE, 1, 0, null, SHORT_LE_MAX)), Constants.SW_INCORRECT_P1P2);
        expectSw("unknown INS", card.transmit(cmd(0xFE, 0, 0, null, Apdus.NO_LE)),
                Constants.SW_INS_NOT_SUPPORTED);
        expectSw("proprietary INS under CLA 00", card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816,
                Constants.INS_GET_DATA, 0x01, 0x02, null, SHORT_LE_MAX)), Constants.SW_INS_NOT_SUPPORTED);
        expectSw("unknown CLA", card.transmit(Apdus.shortApdu(0x40, Constants.INS_GET_DATA, 0x01, 0x02,
                null, SHORT_LE_MAX)), Constants.SW_CLA_NOT_SUPPORTED);
        byte[] otherAid = {(byte) 0xF0, 0x53, 0x45, 0x41, 0x4C, 0x43, 0x41, 0x52, 0x44, 0x02};
        Response otherSelect = card.transmit(Apdus.shortApdu(Constants.CLA_ISO7816, Constants.INS_SELECT,
                Constants.SELECT_P1_BY_NAME, 0, otherAid, SHORT_LE_MAX));
        expectSw("SELECT of an unknown AID", otherSelect, Constants.SW_FILE_NOT_FOUND);
    }

    private void regeneration() {
        SmokeCard card = new SmokeCard();
        card.select();
        generate(card, Constants.KEY_DEVICE);
        generate(card, Constants.KEY_ISSUER_AUTH);
        card.transmit(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN, 0, new byte[] {9, 9, 9, 9},
                Apdus.NO_LE));
        card.transmit(ext(Constants.INS_PUT_CERTIFICATE, Constants.CERT_DEVICE_KEY, 0, derSequence(300),
                Apdus.NO_LE));
        card.transmit(ext(Constants.INS_PUT_CERTIFICATE, Constants.CERT_ISSUER_AUTH_KEY, 0,
                derSequence(300), Apdus.NO_LE));
        card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null, SHORT_LE_MAX));
        generate(card, Constants.KEY_DEVICE);
        expectSw("regenerating the device key discards its certificate",
                getData(card, Constants.DO_DEVICE_KEY_CERT), Constants.SW_REFERENCED_DATA_NOT_FOUND);
        expectSw("... and the signed device key", getData(card, Constants.DO_SIGNED_DEVICE_KEY),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        expectSw("... but not the issuer-auth certificate", getData(card, Constants.DO_ISSUER_AUTH_KEY_CERT),
                Constants.SW_OK);
        generate(card, Constants.KEY_ISSUER_AUTH);
        expectSw("regenerating the issuer-auth key discards its certificate",
                getData(card, Constants.DO_ISSUER_AUTH_KEY_CERT), Constants.SW_REFERENCED_DATA_NOT_FOUND);
    }

    private void closeInitialization(SmokeCard card) throws Exception {
        SmokeCard blank = new SmokeCard();
        blank.select();
        expectSw("CLOSE INITIALIZATION with everything missing", blank.transmit(cmd(
                Constants.INS_CLOSE_INITIALIZATION, 0, 0, null, Apdus.NO_LE)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("CLOSE INITIALIZATION bad P1P2", card.transmit(cmd(Constants.INS_CLOSE_INITIALIZATION,
                0, 1, null, Apdus.NO_LE)), Constants.SW_INCORRECT_P1P2);
        expectSw("CLOSE INITIALIZATION", card.transmit(cmd(Constants.INS_CLOSE_INITIALIZATION, 0, 0, null,
                Apdus.NO_LE)), Constants.SW_OK);
        byte[] select = card.select().data();
        check("state is STATE_INITIALIZED", select[6] == Constants.STATE_INITIALIZED, Apdus.hex(select));
        expectSw("closed: GENERATE KEY PAIR refused", card.transmit(cmd(Constants.INS_GENERATE_KEY_PAIR,
                Constants.KEY_DEVICE, 0, null, SHORT_LE_MAX)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: SET SERIAL refused", card.transmit(cmd(Constants.INS_SET_SERIAL,
                Constants.SERIAL_RANDOM, 0, null, SHORT_LE_MAX)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: PUT ISSUER KEY refused", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0,
                p256Point(), Apdus.NO_LE)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: PUT CERTIFICATE refused", card.transmit(ext(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_DEVICE_KEY, 0, derSequence(20), Apdus.NO_LE)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: SIGN DEVICE KEY refused", card.transmit(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0,
                null, SHORT_LE_MAX)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: CLOSE INITIALIZATION refused", card.transmit(cmd(
                Constants.INS_CLOSE_INITIALIZATION, 0, 0, null, Apdus.NO_LE)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("closed: GET DATA still answers", getData(card, Constants.DO_DEVICE_KEY_CERT),
                Constants.SW_OK);
    }

    private void timings() {
        SmokeCard card = new SmokeCard();
        card.select();
        long[] rsa = new long[RSA_KEYGEN_RUNS];
        for (int i = 0; i < rsa.length; i++) {
            long start = System.nanoTime();
            Response response = generate(card, Constants.KEY_DEVICE);
            rsa[i] = System.nanoTime() - start;
            if (response.sw() != u16(Constants.SW_OK)) {
                check("RSA keygen run " + i, false, String.format("SW %04X", response.sw()));
            }
        }
        long[] ec = new long[EC_KEYGEN_RUNS];
        for (int i = 0; i < ec.length; i++) {
            long start = System.nanoTime();
            generate(card, Constants.KEY_ISSUER_AUTH);
            ec[i] = System.nanoTime() - start;
        }
        long[] sign = new long[EC_KEYGEN_RUNS];
        card.transmit(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN, 0, new byte[8], Apdus.NO_LE));
        for (int i = 0; i < sign.length; i++) {
            long start = System.nanoTime();
            card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null, SHORT_LE_MAX));
            sign[i] = System.nanoTime() - start;
        }
        long[] install = new long[5];
        for (int i = 0; i < install.length; i++) {
            long start = System.nanoTime();
            new SmokeCard().select();
            install[i] = System.nanoTime() - start;
        }
        fact(String.format("GENERATE KEY PAIR RSA-2048 median %.1f ms (n=%d, min %.1f, max %.1f)",
                medianMillis(rsa), rsa.length, Arrays.stream(rsa).min().getAsLong() / 1e6,
                Arrays.stream(rsa).max().getAsLong() / 1e6));
        fact(String.format("GENERATE KEY PAIR EC P-256 median %.2f ms (n=%d)", medianMillis(ec), ec.length));
        fact(String.format("SIGN DEVICE KEY median %.2f ms (n=%d)", medianMillis(sign), sign.length));
        fact(String.format("install (with probes) + SELECT median %.1f ms (n=%d)", medianMillis(install),
                install.length));
    }
}
