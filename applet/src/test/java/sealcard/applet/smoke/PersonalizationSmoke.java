package sealcard.applet.smoke;

import com.licel.jcardsim.bouncycastle.asn1.ASN1Integer;
import com.licel.jcardsim.bouncycastle.asn1.ASN1Sequence;
import com.licel.jcardsim.bouncycastle.asn1.sec.SECNamedCurves;
import com.licel.jcardsim.bouncycastle.asn1.x9.X9ECParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECDomainParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECPublicKeyParameters;
import com.licel.jcardsim.bouncycastle.crypto.signers.ECDSASigner;
import java.math.BigInteger;
import java.security.KeyPair;
import java.security.MessageDigest;
import java.security.Signature;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import java.util.Arrays;
import java.util.Random;
import sealcard.applet.Constants;
import sealcard.applet.smoke.SmokeCard.Response;

/**
 * Issue 3 on jCardSim, in this JVM: PUT PIN PUK, PERSONALIZE (extended and chained; every
 * failure class, each leaving the card as it was), PIN and PUK, SIGN HASH (secp256k1, low
 * S, checked with the Bouncy Castle inside jCardSim), INTERNAL AUTHENTICATE, ISSUER
 * COMMAND, the terminated state, and timings.
 */
final class PersonalizationSmoke {

    private static final int SHORT_LE_MAX = 0x100;
    private static final int EXTENDED_LE_MAX = 0xFFFF;
    private static final int TIMING_RUNS = 20;
    private static final String PIN = "123456";
    private static final String PUK = "87654321";
    private static final X9ECParameters K1 = SECNamedCurves.getByName("secp256k1");
    private static final ECDomainParameters K1_DOMAIN = new ECDomainParameters(K1.getCurve(),
            K1.getG(), K1.getN(), K1.getH());

    private final AppletSmoke smoke;
    private final Random patterns = new Random(3L);

    PersonalizationSmoke(AppletSmoke smoke) {
        this.smoke = smoke;
    }

    /** An initialized card and what the test knows about it. */
    record Card(SmokeCard card, byte[] serial, RSAPublicKey deviceKey, byte[] issuerAuthPoint,
            KeyPair issuer) {
    }

    /** What the issuer put into a blob. */
    record Sealed(byte[] blob, byte[] userKey, KeyPair deviceAuth) {
    }

    // ------------------------------------------------------------------ helpers

    private static byte[] cmd(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    private static byte[] iso(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_ISO7816, ins, p1, p2, data, le);
    }

    private static byte[] ext(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.extendedApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    private static Response getData(SmokeCard card, short object) {
        return card.transmitAll(cmd(Constants.INS_GET_DATA, object >> 8, object & 0xFF, null,
                SHORT_LE_MAX));
    }

    private static byte state(SmokeCard card) {
        return card.select().data()[6];
    }

    Card initializedCard(byte[] serial) throws Exception {
        SmokeCard card = new SmokeCard();
        card.select();
        byte[] rsa = card.transmit(ext(Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_DEVICE, 0,
                null, EXTENDED_LE_MAX)).data();
        byte[] auth = card.transmitAll(cmd(Constants.INS_GENERATE_KEY_PAIR,
                Constants.KEY_ISSUER_AUTH, 0, null, SHORT_LE_MAX)).data();
        card.transmit(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN, 0, serial,
                Apdus.NO_LE));
        KeyPair issuer = Sealing.p256Pair();
        card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0,
                Sealing.point((ECPublicKey) issuer.getPublic()), Apdus.NO_LE));
        card.transmit(cmd(Constants.INS_PUT_CERTIFICATE, Constants.CERT_ISSUER_AUTH_KEY, 0,
                new byte[] {0x30, 0x03, 0x02, 0x01, 0x01}, Apdus.NO_LE));
        card.transmitAll(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null, SHORT_LE_MAX));
        Response closed = card.transmit(cmd(Constants.INS_CLOSE_INITIALIZATION, 0, 0, null,
                Apdus.NO_LE));
        smoke.expectSw("test card initialized", closed, Constants.SW_OK);
        return new Card(card, serial, Sealing.rsaKey(rsa), auth, issuer);
    }

    Sealed seal(Card card, String pin, String puk) throws Exception {
        byte[] userKey = Sealing.randomUserKey();
        KeyPair deviceAuth = Sealing.p256Pair();
        byte[] payload = Sealing.payload(userKey, Sealing.point((ECPublicKey) deviceAuth.getPublic()),
                pin, puk);
        byte[] ciphertext = Sealing.oaepJdk(payload, card.deviceKey());
        return new Sealed(Sealing.blob(card.serial(), ciphertext, card.issuer().getPrivate()),
                userKey, deviceAuth);
    }

    /** A well-signed blob around a raw-RSA ciphertext of a hand-made EM. */
    byte[] sealEm(Card card, byte[] em) throws Exception {
        return Sealing.blob(card.serial(), Sealing.rawRsa(em, card.deviceKey()),
                card.issuer().getPrivate());
    }

    private Response personalize(SmokeCard card, byte[] blob) {
        return card.transmit(ext(Constants.INS_PERSONALIZE, 0, 0, blob, Apdus.NO_LE));
    }

    private Response personalizeChained(SmokeCard card, byte[] blob, int chunk) {
        Response response = null;
        for (int at = 0; at < blob.length; at += chunk) {
            boolean last = at + chunk >= blob.length;
            response = card.transmit(Apdus.shortApdu(last ? Constants.CLA_PROPRIETARY
                    : Constants.CLA_PROPRIETARY_CHAINING, Constants.INS_PERSONALIZE, 0, 0,
                    Arrays.copyOfRange(blob, at, Math.min(blob.length, at + chunk)), Apdus.NO_LE));
            if (!last && response.sw() != (Constants.SW_OK & 0xFFFF)) {
                return response;
            }
        }
        return response;
    }

    private void expectUnchanged(String what, Card card) {
        smoke.check(what + ": card still initialized", state(card.card()) == Constants.STATE_INITIALIZED, "");
        smoke.expectSw(what + ": no user public key", getData(card.card(), Constants.DO_USER_PUBLIC_KEY),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
    }

    private Response verify(SmokeCard card, String pin) {
        return card.transmit(iso(Constants.INS_VERIFY, 0, Constants.PIN_REF_USER,
                pin == null ? null : pin.getBytes(), Apdus.NO_LE));
    }

    private Response signHash(SmokeCard card, byte[] hash) {
        return card.transmitAll(iso(Constants.INS_SIGN_HASH, Constants.PSO_P1P2_SIGN >> 8,
                Constants.PSO_P1P2_SIGN & 0xFF, hash, SHORT_LE_MAX));
    }

    private static byte[] pinTlvs(int firstTag, String first, int secondTag, String second) {
        return Sealing.concat(Sealing.tlv(firstTag, first.getBytes()),
                Sealing.tlv(secondTag, second.getBytes()));
    }

    private static int tries(int count) {
        return (Constants.SW_PIN_TRIES_REMAINING & 0xFFFF) | count;
    }

    /** Verifies a DER secp256k1 signature over a hash and reports whether S is low. */
    private static boolean[] verifySecp256k1(byte[] point, byte[] hash, byte[] der) {
        ASN1Sequence sequence = ASN1Sequence.getInstance(der);
        BigInteger r = ASN1Integer.getInstance(sequence.getObjectAt(0)).getValue();
        BigInteger s = ASN1Integer.getInstance(sequence.getObjectAt(1)).getValue();
        ECDSASigner verifier = new ECDSASigner();
        verifier.init(false, new ECPublicKeyParameters(K1.getCurve().decodePoint(point), K1_DOMAIN));
        boolean valid = verifier.verifySignature(hash, r, s);
        boolean low = s.compareTo(K1.getN().shiftRight(1)) <= 0;
        return new boolean[] {valid, low};
    }

    private static byte[] sha256(byte[] data) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(data);
    }

    // ------------------------------------------------------------------ tests

    void runAll() throws Exception {
        oaepEncoderAgreesWithJdk();
        refusedBlobs();
        personalizeAndUse();
        pinAndPuk();
        issuerCommands();
        timings();
    }

    private void oaepEncoderAgreesWithJdk() throws Exception {
        java.security.KeyPairGenerator generator = java.security.KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048);
        KeyPair pair = generator.generateKeyPair();
        byte[] message = "hand-made OAEP".getBytes();
        byte[] opened = Sealing.oaepJdkDecrypt(Sealing.rawRsa(Sealing.oaepEncode(message,
                Sealing.Defect.NONE), (RSAPublicKey) pair.getPublic()), pair.getPrivate());
        smoke.check("test OAEP encoder: the JDK opens what it makes", Arrays.equals(opened, message), "");
    }

    private void refusedBlobs() throws Exception {
        Card card = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05});
        SmokeCard sc = card.card();
        Sealed good = seal(card, PIN, PUK);
        byte[] blob = good.blob();

        expectSw("PERSONALIZE bad P1P2", sc.transmit(ext(Constants.INS_PERSONALIZE, 1, 0, blob,
                Apdus.NO_LE)), Constants.SW_INCORRECT_P1P2);
        expectSw("PERSONALIZE empty", sc.transmit(cmd(Constants.INS_PERSONALIZE, 0, 0, null,
                Apdus.NO_LE)), Constants.SW_WRONG_LENGTH);
        byte[] badMagic = blob.clone();
        badMagic[0] = 0x54;
        expectSw("PERSONALIZE bad magic", personalize(sc, badMagic), Constants.SW_WRONG_DATA);
        byte[] badVersion = blob.clone();
        badVersion[3] = 0x02;
        expectSw("PERSONALIZE bad version", personalize(sc, badVersion), Constants.SW_WRONG_DATA);
        expectSw("PERSONALIZE truncated", personalize(sc, Arrays.copyOf(blob, blob.length - 1)),
                Constants.SW_WRONG_DATA);
        expectSw("PERSONALIZE extended by a byte", personalize(sc, Arrays.copyOf(blob, blob.length + 1)),
                Constants.SW_WRONG_DATA);
        expectSw("PERSONALIZE far too long", personalize(sc, new byte[400]), Constants.SW_WRONG_DATA);

        Card other = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x02});
        expectSw("PERSONALIZE a blob for another card", personalize(other.card(), blob),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);
        byte[] serialTampered = blob.clone();
        serialTampered[6] ^= 0x01;
        expectSw("PERSONALIZE serial tampered", personalize(sc, serialTampered),
                Constants.SW_REFERENCED_DATA_NOT_FOUND);

        byte[] ctTampered = blob.clone();
        ctTampered[5 + card.serial().length + 2 + 100] ^= 0x01;
        expectSw("PERSONALIZE ciphertext tampered", personalize(sc, ctTampered),
                Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        byte[] sigTampered = blob.clone();
        sigTampered[blob.length - 3] ^= 0x01;
        expectSw("PERSONALIZE signature tampered", personalize(sc, sigTampered),
                Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        KeyPair stranger = Sealing.p256Pair();
        byte[] ciphertext = Arrays.copyOfRange(blob, 5 + card.serial().length + 2,
                5 + card.serial().length + 2 + 256);
        expectSw("PERSONALIZE signed by another issuer key", personalize(sc, Sealing.blob(card.serial(),
                ciphertext, stranger.getPrivate())), Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        for (int i = 0; i < 4; i++) { // a valid ECDSA signature, but (r, n - s): refused
            expectSw("PERSONALIZE with the high-S twin of a good signature", personalize(sc,
                    Sealing.blobWithS(card.serial(), ciphertext, card.issuer().getPrivate(), true)),
                    Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        }

        // Well signed, but the padding or the payload is wrong: one SW for all.
        byte[] authPoint = Sealing.point((ECPublicKey) Sealing.p256Pair().getPublic());
        byte[] payload = Sealing.payload(Sealing.randomUserKey(), authPoint, PIN, PUK);
        for (Sealing.Defect defect : Sealing.Defect.values()) {
            if (defect == Sealing.Defect.NONE) {
                continue;
            }
            expectSw("PERSONALIZE OAEP defect " + defect, personalize(sc,
                    sealEm(card, Sealing.oaepEncode(payload, defect))), Constants.SW_DATA_INVALID);
        }
        byte[] aboveModulus = new byte[256];
        Arrays.fill(aboveModulus, (byte) 0xFF);
        expectSw("PERSONALIZE ciphertext above the modulus", personalize(sc,
                Sealing.blob(card.serial(), aboveModulus, card.issuer().getPrivate())),
                Constants.SW_DATA_INVALID);
        byte[] offCurve = authPoint.clone();
        offCurve[64] ^= 0x01;
        byte[][] badPayloads = {
            Sealing.payload(new byte[32], authPoint, PIN, PUK),
            Sealing.payload(Sealing.scalar(Sealing.SECP256K1_N), authPoint, PIN, PUK),
            Sealing.payload(Sealing.scalar(Sealing.SECP256K1_N.add(BigInteger.ONE)), authPoint, null, null),
            Sealing.payload(Sealing.randomUserKey(), offCurve, PIN, PUK),
            Sealing.payload(Sealing.randomUserKey(), authPoint, "12a456", PUK),
            Sealing.payload(Sealing.randomUserKey(), authPoint, "123", PUK),
            Sealing.payload(Sealing.randomUserKey(), authPoint, PIN, "1234567"),
            Sealing.payload(Sealing.randomUserKey(), authPoint, PIN, null),
            Sealing.payload(Sealing.randomUserKey(), authPoint, null, PUK),
            Arrays.copyOf(Sealing.payload(Sealing.randomUserKey(), authPoint, null, null), 100),
            Sealing.concat(Sealing.payload(Sealing.randomUserKey(), authPoint, null, null), new byte[] {0}),
            Sealing.concat(Sealing.payload(Sealing.randomUserKey(), authPoint, PIN, PUK), new byte[] {0}),
        };
        String[] names = {"user key 0", "user key n", "user key n+1", "off-curve auth key",
            "PIN not digits", "PIN too short", "PUK too short", "PIN without PUK", "PUK without PIN",
            "truncated", "trailing byte", "trailing byte after PUK"};
        for (int i = 0; i < badPayloads.length; i++) {
            byte[] bad = Sealing.blob(card.serial(), Sealing.oaepJdk(badPayloads[i], card.deviceKey()),
                    card.issuer().getPrivate());
            expectSw("PERSONALIZE payload " + names[i], personalize(sc, bad), Constants.SW_DATA_INVALID);
        }
        byte[] swapped = Sealing.concat(Sealing.tlv(0x02, authPoint), Sealing.tlv(0x01, Sealing.randomUserKey()));
        expectSw("PERSONALIZE payload tags swapped", personalize(sc, Sealing.blob(card.serial(),
                Sealing.oaepJdk(swapped, card.deviceKey()), card.issuer().getPrivate())),
                Constants.SW_DATA_INVALID);
        expectUnchanged("after every refused blob", card);

        // A reset between chained APDUs: the chain is gone, the state unchanged.
        Response first = sc.transmit(Apdus.shortApdu(Constants.CLA_PROPRIETARY_CHAINING,
                Constants.INS_PERSONALIZE, 0, 0, Arrays.copyOf(blob, 200), Apdus.NO_LE));
        expectSw("PERSONALIZE chain: first chunk", first, Constants.SW_OK);
        sc.reset();
        sc.select();
        expectSw("PERSONALIZE chain: last chunk after a reset is a fresh (malformed) blob",
                personalize(sc, Arrays.copyOfRange(blob, 200, blob.length)), Constants.SW_WRONG_DATA);
        expectUnchanged("after a reset mid-chain", card);

        expectSw("PERSONALIZE the good blob after all that", personalize(sc, blob), Constants.SW_OK);
        smoke.check("state is personalized", state(sc) == Constants.STATE_PERSONALIZED, "");
        expectSw("PERSONALIZE replayed", personalize(sc, blob), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("PUT PIN PUK after personalization", sc.transmit(cmd(Constants.INS_PUT_PIN_PUK, 0, 0,
                pinTlvs(3, PIN, 4, PUK), Apdus.NO_LE)), Constants.SW_CONDITIONS_NOT_SATISFIED);
    }

    private void expectSw(String what, Response response, short sw) {
        smoke.expectSw(what, response, sw);
    }

    private void personalizeAndUse() throws Exception {
        Card card = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x00, 0x00, 0x10});
        SmokeCard sc = card.card();
        expectSw("VERIFY before personalization", verify(sc, PIN), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("SIGN HASH before personalization", signHash(sc, new byte[32]),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("PUT PIN PUK not digits", sc.transmit(cmd(Constants.INS_PUT_PIN_PUK, 0, 0,
                pinTlvs(3, "12x4", 4, PUK), Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("PUT PIN PUK swapped", sc.transmit(cmd(Constants.INS_PUT_PIN_PUK, 0, 0,
                pinTlvs(4, PUK, 3, PIN), Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("PUT PIN PUK (bureau)", sc.transmit(cmd(Constants.INS_PUT_PIN_PUK, 0, 0,
                pinTlvs(3, "2468", 4, "13579135"), Apdus.NO_LE)), Constants.SW_OK);
        Sealed sealed = seal(card, null, null);
        Response chained = personalizeChained(sc, sealed.blob(), 255);
        expectSw("PERSONALIZE chained (2 short APDUs), no PIN in the blob", chained, Constants.SW_OK);
        byte[] expectedPoint = K1.getG().multiply(new BigInteger(1, sealed.userKey())).normalize()
                .getEncoded(false);
        Response pub = getData(sc, Constants.DO_USER_PUBLIC_KEY);
        smoke.check("DO_USER_PUBLIC_KEY = k*G", pub.sw() == 0x9000 && Arrays.equals(pub.data(), expectedPoint),
                Apdus.hex(pub.data()));
        Response status = getData(sc, Constants.DO_PIN_STATUS);
        smoke.check("DO_PIN_STATUS: bureau PIN set, 3 and 5 tries, user key", Arrays.equals(status.data(),
                new byte[] {1, Constants.PIN_TRY_LIMIT, Constants.PUK_TRY_LIMIT, 1}), Apdus.hex(status.data()));
        expectSw("VERIFY with the staged bureau PIN", verify(sc, "2468"), Constants.SW_OK);

        byte[] hash = sha256("a transaction".getBytes());
        expectSw("SIGN HASH bad P1P2", sc.transmit(iso(Constants.INS_SIGN_HASH, 0x9E, 0x9B, hash,
                SHORT_LE_MAX)), Constants.SW_INCORRECT_P1P2);
        expectSw("SIGN HASH 31 bytes", sc.transmit(iso(Constants.INS_SIGN_HASH, 0x9E, 0x9A,
                Arrays.copyOf(hash, 31), SHORT_LE_MAX)), Constants.SW_WRONG_LENGTH);
        int valid = 0;
        int low = 0;
        int runs = 32;
        for (int i = 0; i < runs; i++) {
            byte[] h = sha256(new byte[] {(byte) i});
            Response signature = signHash(sc, h);
            boolean[] result = verifySecp256k1(expectedPoint, h, signature.data());
            valid += result[0] ? 1 : 0;
            low += result[1] ? 1 : 0;
        }
        smoke.check("SIGN HASH: " + runs + " signatures verify under k*G", valid == runs, valid + "/" + runs);
        smoke.check("SIGN HASH: all low S", low == runs, low + "/" + runs);

        sc.reset();
        sc.select();
        expectSw("SIGN HASH after a reset: PIN needed again", signHash(sc, hash),
                Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        expectSw("VERIFY without data, not verified: tries left", verify(sc, null), tries3());
        expectSw("VERIFY", verify(sc, "2468"), Constants.SW_OK);
        expectSw("VERIFY without data after verifying", verify(sc, null), Constants.SW_OK);
        sc.select();
        expectSw("SIGN HASH after a new SELECT: PIN needed again", signHash(sc, hash),
                Constants.SW_SECURITY_STATUS_NOT_SATISFIED);

        byte[] challenge = new byte[16];
        patterns.nextBytes(challenge);
        Response auth = sc.transmitAll(iso(Constants.INS_INTERNAL_AUTHENTICATE, 0, 0, challenge, SHORT_LE_MAX));
        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify(javaP256(card.issuerAuthPoint()));
        verifier.update(Sealing.concat("SCIA".getBytes(), new byte[] {(byte) card.serial().length},
                card.serial(), challenge));
        smoke.check("INTERNAL AUTHENTICATE verifies under the issuer-auth key",
                auth.sw() == 0x9000 && verifier.verify(auth.data()), Apdus.hex(auth.data()));
        expectSw("INTERNAL AUTHENTICATE 7 bytes", sc.transmit(iso(Constants.INS_INTERNAL_AUTHENTICATE, 0, 0,
                new byte[7], SHORT_LE_MAX)), Constants.SW_WRONG_LENGTH);

        // FIG. 5: PIN and PUK from the blob win over staged ones.
        Card fig5 = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x00, 0x00, 0x11});
        fig5.card().transmit(cmd(Constants.INS_PUT_PIN_PUK, 0, 0, pinTlvs(3, "2468", 4, "13579135"),
                Apdus.NO_LE));
        expectSw("PERSONALIZE with PIN and PUK in the blob", personalize(fig5.card(),
                seal(fig5, PIN, PUK).blob()), Constants.SW_OK);
        expectSw("the staged PIN is not the PIN", verify(fig5.card(), "2468"), tries(2));
        expectSw("the blob's PIN is", verify(fig5.card(), PIN), Constants.SW_OK);

        // User-system flow: no PIN anywhere; the user sets PIN and PUK.
        Card user = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x00, 0x00, 0x12});
        SmokeCard uc = user.card();
        expectSw("PERSONALIZE without any PIN", personalize(uc, seal(user, null, null).blob()), Constants.SW_OK);
        smoke.check("DO_PIN_STATUS: no PIN", getData(uc, Constants.DO_PIN_STATUS).data()[0] == 0, "");
        expectSw("VERIFY with no PIN set", verify(uc, PIN), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("CHANGE P1=00 with no PIN set", uc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA, 0,
                Constants.PIN_REF_USER, pinTlvs(3, PIN, 3, "9999"), Apdus.NO_LE)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("CHANGE P1=01 bad PUK", uc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA,
                Constants.CHANGE_P1_INITIAL, Constants.PIN_REF_USER, pinTlvs(3, PIN, 4, "1234"), Apdus.NO_LE)),
                Constants.SW_WRONG_DATA);
        expectSw("CHANGE P1=01 (user's first PIN and PUK)", uc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA,
                Constants.CHANGE_P1_INITIAL, Constants.PIN_REF_USER, pinTlvs(3, PIN, 4, PUK), Apdus.NO_LE)),
                Constants.SW_OK);
        expectSw("CHANGE P1=01 again", uc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA,
                Constants.CHANGE_P1_INITIAL, Constants.PIN_REF_USER, pinTlvs(3, PIN, 4, PUK), Apdus.NO_LE)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("VERIFY the user's PIN", verify(uc, PIN), Constants.SW_OK);
    }

    private static int tries3() {
        return tries(Constants.PIN_TRY_LIMIT);
    }

    private void expectSw(String what, Response response, int sw) {
        smoke.check(what, response.sw() == sw, String.format("SW %04X, expected %04X", response.sw(), sw));
    }

    private static java.security.interfaces.ECPublicKey javaP256(byte[] point) throws Exception {
        java.security.AlgorithmParameters parameters = java.security.AlgorithmParameters.getInstance("EC");
        parameters.init(new java.security.spec.ECGenParameterSpec("secp256r1"));
        java.security.spec.ECParameterSpec spec = parameters.getParameterSpec(java.security.spec.ECParameterSpec.class);
        BigInteger x = new BigInteger(1, Arrays.copyOfRange(point, 1, 33));
        BigInteger y = new BigInteger(1, Arrays.copyOfRange(point, 33, 65));
        return (java.security.interfaces.ECPublicKey) java.security.KeyFactory.getInstance("EC")
                .generatePublic(new java.security.spec.ECPublicKeySpec(new java.security.spec.ECPoint(x, y), spec));
    }

    private Card personalizedCard(byte last, Sealed[] out) throws Exception {
        Card card = initializedCard(new byte[] {0x5C, 0x00, 0x00, 0x00, 0x01, last});
        out[0] = seal(card, PIN, PUK);
        expectSw("PERSONALIZE test card " + last, personalize(card.card(), out[0].blob()), Constants.SW_OK);
        return card;
    }

    private void pinAndPuk() throws Exception {
        Sealed[] sealed = new Sealed[1];
        Card card = personalizedCard((byte) 1, sealed);
        SmokeCard sc = card.card();
        byte[] hash = sha256("x".getBytes());
        expectSw("VERIFY P2 wrong", sc.transmit(iso(Constants.INS_VERIFY, 0, 0x80, PIN.getBytes(), Apdus.NO_LE)),
                Constants.SW_INCORRECT_P1P2);
        expectSw("VERIFY 3 digits", verify(sc, "123"), Constants.SW_WRONG_LENGTH);
        expectSw("VERIFY wrong PIN", verify(sc, "000000"), tries(2));
        expectSw("VERIFY right PIN resets the counter", verify(sc, PIN), Constants.SW_OK);
        smoke.check("PIN counter full again", getData(sc, Constants.DO_PIN_STATUS).data()[1]
                == Constants.PIN_TRY_LIMIT, "");
        expectSw("CHANGE wrong old PIN", sc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA, 0,
                Constants.PIN_REF_USER, pinTlvs(3, "000000", 3, "4321"), Apdus.NO_LE)), tries(2));
        expectSw("CHANGE new PIN not digits", sc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA, 0,
                Constants.PIN_REF_USER, pinTlvs(3, PIN, 3, "43 1"), Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("CHANGE", sc.transmit(iso(Constants.INS_CHANGE_REFERENCE_DATA, 0,
                Constants.PIN_REF_USER, pinTlvs(3, PIN, 3, "4321"), Apdus.NO_LE)), Constants.SW_OK);
        expectSw("old PIN no longer verifies", verify(sc, PIN), tries(2));
        expectSw("new PIN verifies", verify(sc, "4321"), Constants.SW_OK);
        // Exhaust the PIN.
        expectSw("wrong PIN 1", verify(sc, "0000"), tries(2));
        expectSw("wrong PIN 2", verify(sc, "0000"), tries(1));
        expectSw("wrong PIN 3", verify(sc, "0000"), tries(0));
        expectSw("PIN blocked: right PIN refused", verify(sc, "4321"), Constants.SW_AUTH_METHOD_BLOCKED);
        expectSw("PIN blocked: SIGN HASH refused", signHash(sc, hash), Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        sc.reset();
        sc.select();
        expectSw("PIN blocked survives a reset", verify(sc, "4321"), Constants.SW_AUTH_METHOD_BLOCKED);
        expectSw("RESET RETRY COUNTER wrong PUK", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                Constants.PIN_REF_USER, pinTlvs(4, "00000000", 3, "5555"), Apdus.NO_LE)), tries(4));
        expectSw("RESET RETRY COUNTER malformed", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                Constants.PIN_REF_USER, pinTlvs(3, "5555", 4, PUK), Apdus.NO_LE)), Constants.SW_WRONG_DATA);
        expectSw("RESET RETRY COUNTER", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                Constants.PIN_REF_USER, pinTlvs(4, PUK, 3, "5555"), Apdus.NO_LE)), Constants.SW_OK);
        smoke.check("after unblock: counters full", Arrays.equals(getData(sc, Constants.DO_PIN_STATUS).data(),
                new byte[] {1, Constants.PIN_TRY_LIMIT, Constants.PUK_TRY_LIMIT, 1}), "");
        expectSw("the unblocked PIN verifies", verify(sc, "5555"), Constants.SW_OK);
        expectSw("and signs", signHash(sc, hash), Constants.SW_OK);

        // Exhaust the PUK: the user key is gone for good.
        for (int left = Constants.PUK_TRY_LIMIT - 1; left > 0; left--) {
            expectSw("wrong PUK, " + left + " left", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                    Constants.PIN_REF_USER, pinTlvs(4, "00000000", 3, "5555"), Apdus.NO_LE)), tries(left));
        }
        expectSw("last wrong PUK blocks it", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                Constants.PIN_REF_USER, pinTlvs(4, "00000000", 3, "5555"), Apdus.NO_LE)),
                Constants.SW_AUTH_METHOD_BLOCKED);
        expectSw("right PUK after blocking", sc.transmit(iso(Constants.INS_RESET_RETRY_COUNTER, 0,
                Constants.PIN_REF_USER, pinTlvs(4, PUK, 3, "5555"), Apdus.NO_LE)),
                Constants.SW_AUTH_METHOD_BLOCKED);
        sc.select();
        expectSw("PIN still verifies", verify(sc, "5555"), Constants.SW_OK);
        expectSw("but the user key is wiped: SIGN HASH refused", signHash(sc, hash),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        byte[] wiped = getData(sc, Constants.DO_PIN_STATUS).data();
        smoke.check("DO_PIN_STATUS says the user key is gone", wiped.length == 4 && wiped[3] == 0,
                Apdus.hex(wiped));
    }

    private byte[] issuerSignature(KeyPair deviceAuth, byte[] serial, byte[] challenge, int p1, byte[] body)
            throws Exception {
        byte[] message = Sealing.concat("SCIC".getBytes(), new byte[] {(byte) serial.length}, serial, challenge,
                new byte[] {Constants.INS_ISSUER_COMMAND, (byte) p1, 0, (byte) body.length}, body);
        return Sealing.ecdsa(deviceAuth.getPrivate(), message);
    }

    private Response issuerCommand(SmokeCard card, int p1, byte[] body, byte[] signature) {
        return card.transmit(cmd(Constants.INS_ISSUER_COMMAND, p1, 0,
                Sealing.concat(new byte[] {(byte) body.length}, body, signature), Apdus.NO_LE));
    }

    private byte[] challenge(SmokeCard card) {
        Response response = card.transmit(iso(Constants.INS_GET_CHALLENGE, 0, 0, null, 16));
        smoke.check("GET CHALLENGE: 16 bytes", response.sw() == 0x9000 && response.data().length == 16, "");
        return response.data();
    }

    private void issuerCommands() throws Exception {
        Sealed[] sealed = new Sealed[1];
        Card card = personalizedCard((byte) 2, sealed);
        SmokeCard sc = card.card();
        KeyPair deviceAuth = sealed[0].deviceAuth();
        byte[] serial = card.serial();
        byte[] body = Sealing.tlv(Constants.TAG_PIN, "7777".getBytes());

        expectSw("ISSUER COMMAND without a challenge", issuerCommand(sc, 1, body,
                issuerSignature(deviceAuth, serial, new byte[16], 1, body)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        byte[] c1 = challenge(sc);
        byte[] c2 = challenge(sc);
        smoke.check("challenges differ", !Arrays.equals(c1, c2), "");
        byte[] c = challenge(sc);
        getData(sc, Constants.DO_PIN_STATUS);
        expectSw("ISSUER COMMAND after another command (challenge gone)", issuerCommand(sc, 1, body,
                issuerSignature(deviceAuth, serial, c, 1, body)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        c = challenge(sc);
        expectSw("ISSUER COMMAND signed by another key", issuerCommand(sc, 1, body,
                issuerSignature(Sealing.p256Pair(), serial, c, 1, body)), Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        byte[] late = issuerSignature(deviceAuth, serial, c, 1, body);
        expectSw("ISSUER COMMAND with the consumed challenge", issuerCommand(sc, 1, body, late),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        c = challenge(sc);
        expectSw("ISSUER COMMAND signed for P1=02, sent as P1=01", issuerCommand(sc, 1, body,
                issuerSignature(deviceAuth, serial, c, 2, body)), Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        c = challenge(sc);
        expectSw("ISSUER COMMAND bad P1", issuerCommand(sc, 3, new byte[0],
                issuerSignature(deviceAuth, serial, c, 3, new byte[0])), Constants.SW_INCORRECT_P1P2);
        c = challenge(sc);
        byte[] badBody = Sealing.tlv(Constants.TAG_PIN, "77".getBytes());
        expectSw("ISSUER COMMAND body malformed", issuerCommand(sc, 1, badBody,
                issuerSignature(deviceAuth, serial, c, 1, badBody)), Constants.SW_WRONG_DATA);

        for (int i = 0; i < Constants.PIN_TRY_LIMIT; i++) {
            verify(sc, "0000");
        }
        expectSw("PIN blocked before the issuer reset", verify(sc, PIN), Constants.SW_AUTH_METHOD_BLOCKED);
        c = challenge(sc);
        byte[] good = issuerSignature(deviceAuth, serial, c, 1, body);
        expectSw("ISSUER COMMAND reset PIN", issuerCommand(sc, 1, body, good), Constants.SW_OK);
        expectSw("ISSUER COMMAND replayed", issuerCommand(sc, 1, body, good), Constants.SW_CONDITIONS_NOT_SATISFIED);
        challenge(sc);
        expectSw("ISSUER COMMAND replayed after a new challenge", issuerCommand(sc, 1, body, good),
                Constants.SW_SECURITY_STATUS_NOT_SATISFIED);
        expectSw("the issuer's new PIN verifies", verify(sc, "7777"), Constants.SW_OK);

        c = challenge(sc);
        expectSw("ISSUER COMMAND terminate", issuerCommand(sc, 2, new byte[0],
                issuerSignature(deviceAuth, serial, c, 2, new byte[0])), Constants.SW_OK);
        smoke.check("state is terminated", state(sc) == Constants.STATE_TERMINATED, "");
        expectSw("terminated: VERIFY refused", verify(sc, "7777"), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("terminated: SIGN HASH refused", signHash(sc, new byte[32]), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("terminated: GET CHALLENGE refused", sc.transmit(iso(Constants.INS_GET_CHALLENGE, 0, 0, null, 16)),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("terminated: INTERNAL AUTHENTICATE refused", sc.transmit(iso(Constants.INS_INTERNAL_AUTHENTICATE,
                0, 0, new byte[16], SHORT_LE_MAX)), Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("terminated: PERSONALIZE refused", personalize(sc, sealed[0].blob()),
                Constants.SW_CONDITIONS_NOT_SATISFIED);
        expectSw("terminated: GET DATA answers", getData(sc, Constants.DO_SERIAL), Constants.SW_OK);
    }

    private void timings() throws Exception {
        long[] personalize = new long[TIMING_RUNS];
        long[] sign = new long[TIMING_RUNS];
        long[] verifyPin = new long[TIMING_RUNS];
        Card last = null;
        for (int i = 0; i < TIMING_RUNS; i++) {
            Card card = initializedCard(new byte[] {0x5C, 0x01, 0x00, 0x00, 0x00, (byte) i});
            byte[] blob = seal(card, PIN, PUK).blob();
            long start = System.nanoTime();
            Response response = personalize(card.card(), blob);
            personalize[i] = System.nanoTime() - start;
            smoke.check("timed PERSONALIZE " + i, response.sw() == 0x9000, "");
            last = card;
        }
        SmokeCard sc = last.card();
        for (int i = 0; i < TIMING_RUNS; i++) {
            long start = System.nanoTime();
            verify(sc, PIN);
            verifyPin[i] = System.nanoTime() - start;
        }
        for (int i = 0; i < TIMING_RUNS; i++) {
            byte[] hash = sha256(new byte[] {(byte) i, 1});
            long start = System.nanoTime();
            signHash(sc, hash);
            sign[i] = System.nanoTime() - start;
        }
        AppletSmoke.fact(String.format("PERSONALIZE (extended APDU) median %.2f ms (n=%d)",
                AppletSmoke.medianMillis(personalize), TIMING_RUNS));
        AppletSmoke.fact(String.format("VERIFY median %.3f ms, SIGN HASH median %.2f ms (n=%d)",
                AppletSmoke.medianMillis(verifyPin), AppletSmoke.medianMillis(sign), TIMING_RUNS));
    }
}
