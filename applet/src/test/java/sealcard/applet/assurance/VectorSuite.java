package sealcard.applet.assurance;

import com.licel.jcardsim.bouncycastle.asn1.sec.SECNamedCurves;
import com.licel.jcardsim.bouncycastle.asn1.x9.X9ECParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECDomainParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECPublicKeyParameters;
import com.licel.jcardsim.bouncycastle.crypto.signers.ECDSASigner;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import javacard.security.KeyBuilder;
import javacard.security.RSAPrivateCrtKey;
import sealcard.applet.VectorBridge;

/**
 * Suite 5, public test vectors (Wycheproof, C2SP; files and licence in
 * tests/vectors/wycheproof) through the applet's own code paths:
 * RSA-OAEP-2048-SHA256 (MGF1-SHA256) through the applet's constant-time decoder (the
 * platform has no native OAEP-SHA256 here, so the applet decodes it itself), ECDSA P-256
 * SHA-256 verification as PERSONALIZE checks the issuer signature, and SIGN HASH's low-S
 * normalization of secp256k1 signatures (each valid signature, normalized, must still verify
 * and be the low-S one). "acceptable" vectors may go either way and are counted apart.
 */
final class VectorSuite {

    private static final X9ECParameters K1 = SECNamedCurves.getByName("secp256k1");

    private final Report report = new Report("vectors");
    private final Path dir = Path.of(System.getProperty("sealcard.wycheproof",
            "tests/vectors/wycheproof"));

    Report run() throws Exception {
        VectorBridge bridge = new VectorBridge();
        report.check(!bridge.platformOaep(), "the platform has native OAEP-SHA256: the applet's"
                + " decoder would not be the one under test");
        oaep(bridge);
        p256(bridge);
        lowS();
        return report;
    }

    private List<Object> groups(String file) throws Exception {
        Map<String, Object> root = Json.object(Json.parse(Files.readString(dir.resolve(file))));
        return Json.array(root.get("testGroups"));
    }

    static byte[] hex(Object value) {
        String s = (String) value;
        byte[] out = new byte[s.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    private static byte[] unsigned(Object value) {
        byte[] raw = hex(value);
        int skip = 0;
        while (skip < raw.length - 1 && raw[skip] == 0) {
            skip++;
        }
        return Arrays.copyOfRange(raw, skip, raw.length);
    }

    private void oaep(VectorBridge bridge) throws Exception {
        for (Object g : groups("rsa_oaep_2048_sha256_mgf1sha256_test.json")) {
            Map<String, Object> group = Json.object(g);
            Map<String, Object> pk = Json.object(group.get("privateKey"));
            RSAPrivateCrtKey key = (RSAPrivateCrtKey) KeyBuilder.buildKey(
                    KeyBuilder.TYPE_RSA_CRT_PRIVATE, KeyBuilder.LENGTH_RSA_2048, false);
            set(key::setP, unsigned(pk.get("prime1")));
            set(key::setQ, unsigned(pk.get("prime2")));
            set(key::setDP1, unsigned(pk.get("exponent1")));
            set(key::setDQ1, unsigned(pk.get("exponent2")));
            set(key::setPQ, unsigned(pk.get("coefficient")));
            for (Object t : Json.array(group.get("tests"))) {
                Map<String, Object> test = Json.object(t);
                String id = "OAEP tcId " + ((Double) test.get("tcId")).intValue() + " ("
                        + test.get("comment") + ")";
                byte[] ct = hex(test.get("ct"));
                byte[] label = hex(test.get("label"));
                byte[] msg = hex(test.get("msg"));
                String result = (String) test.get("result");
                byte[] decoded = ct.length == 256 ? bridge.oaepDecrypt(key, ct) : null;
                report.count("oaep", 1);
                if (result.equals("acceptable")) {
                    report.count("oaep_acceptable", 1);
                    continue;
                }
                boolean expectValid = result.equals("valid") && label.length == 0;
                if (result.equals("valid") && label.length > 0) {
                    report.count("oaep_valid_with_label_refused", 1);
                }
                if (ct.length != 256) {
                    report.count("oaep_refused_by_blob_framing", 1);
                }
                report.check(expectValid ? decoded != null && Arrays.equals(decoded, msg)
                        : decoded == null, id + ": expected " + (expectValid ? "the message"
                        : "a refusal") + ", got " + (decoded == null ? "a refusal"
                        : "a message of " + decoded.length + " bytes"));
            }
        }
    }

    interface Setter {
        void set(byte[] buffer, short offset, short length);
    }

    private static void set(Setter setter, byte[] value) {
        setter.set(value, (short) 0, (short) value.length);
    }

    private void p256(VectorBridge bridge) throws Exception {
        for (Object g : groups("ecdsa_secp256r1_sha256_test.json")) {
            Map<String, Object> group = Json.object(g);
            byte[] point = hex(Json.object(group.get("publicKey")).get("uncompressed"));
            for (Object t : Json.array(group.get("tests"))) {
                Map<String, Object> test = Json.object(t);
                String id = "P-256 tcId " + ((Double) test.get("tcId")).intValue() + " ("
                        + test.get("comment") + ")";
                String result = (String) test.get("result");
                byte[] sig = hex(test.get("sig"));
                boolean accepted = bridge.verifyP256(point, hex(test.get("msg")), sig);
                report.count("p256", 1);
                if (result.equals("acceptable")) {
                    report.count("p256_acceptable", 1);
                    continue;
                }
                if (result.equals("valid") && Der.isHigh(sig, Der.P256_N)) {
                    report.count("p256_valid_high_s", 1);
                }
                report.check(accepted == result.equals("valid"), id + ": expected " + result
                        + ", the card's check " + (accepted ? "accepted" : "refused"));
            }
        }
    }

    /** SIGN HASH's low-S normalization over every valid secp256k1 vector. */
    private void lowS() throws Exception {
        ECDomainParameters domain = new ECDomainParameters(K1.getCurve(), K1.getG(), K1.getN(),
                K1.getH());
        BigInteger half = K1.getN().shiftRight(1);
        for (String file : new String[] {"ecdsa_secp256k1_sha256_test.json",
            "ecdsa_secp256k1_sha256_bitcoin_test.json"}) {
            boolean bitcoin = file.contains("bitcoin");
            for (Object g : groups(file)) {
                Map<String, Object> group = Json.object(g);
                byte[] point = hex(Json.object(group.get("publicKey")).get("uncompressed"));
                ECDSASigner verifier = new ECDSASigner();
                verifier.init(false, new ECPublicKeyParameters(
                        K1.getCurve().decodePoint(point), domain));
                for (Object t : Json.array(group.get("tests"))) {
                    Map<String, Object> test = Json.object(t);
                    String result = (String) test.get("result");
                    List<Object> flags = Json.array(test.get("flags"));
                    boolean malleable = flags.contains("SignatureMalleabilityBitcoin");
                    // the card only ever normalizes its own, valid, DER signatures
                    if (!result.equals("valid") && !(bitcoin && malleable)) {
                        continue;
                    }
                    String id = file + " tcId " + ((Double) test.get("tcId")).intValue();
                    byte[] sig = hex(test.get("sig"));
                    byte[] hash = MessageDigest.getInstance("SHA-256").digest(
                            hex(test.get("msg")));
                    BigInteger[] rs = Der.decode(sig);
                    BigInteger lowS = rs[1].compareTo(half) > 0 ? K1.getN().subtract(rs[1])
                            : rs[1];
                    byte[] normalized = VectorBridge.lowS(sig);
                    report.count("secp256k1_low_s", 1);
                    if (rs[1].compareTo(half) > 0) {
                        report.count("secp256k1_high_s_normalized", 1);
                    }
                    report.check(Arrays.equals(normalized, Der.encode(rs[0], lowS)),
                            id + ": normalized to " + CardViewHex.hex(normalized));
                    report.check(verifier.verifySignature(hash, rs[0], lowS),
                            id + ": the low-S signature does not verify");
                }
            }
        }
    }

    /** Hex for messages. */
    static final class CardViewHex {
        static String hex(byte[] data) {
            return sealcard.applet.model.CardView.hex(data);
        }
    }
}
