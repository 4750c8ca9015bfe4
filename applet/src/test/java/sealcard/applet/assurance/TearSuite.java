package sealcard.applet.assurance;

import java.lang.reflect.Field;
import java.security.KeyPair;
import java.security.interfaces.ECPublicKey;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.function.BiPredicate;
import sealcard.applet.Constants;
import sealcard.applet.model.CardMemory;
import sealcard.applet.model.CardView;
import sealcard.applet.model.ModelCard;
import sealcard.applet.model.ModelCard.Response;
import sealcard.applet.model.ModelOwnerPIN;
import sealcard.applet.model.Randomness;
import sealcard.applet.smoke.Apdus;
import sealcard.applet.smoke.Sealing;

/**
 * Suite 2, tearing. Walks one card from blank through step A, personalization, PIN use and
 * issuer commands. For each step (a power-up, SELECT, the step's APDUs) it runs the step
 * once untorn, counting the persistent writes (N), then again from the same state with the
 * power cut at write k, for every k in 1..N (full size) or a sample that always includes
 * the first and last writes and every APDU boundary (CI size). After each cut: power-up,
 * and the card's state must be the state before the step or the state after it (a documented
 * third state only where docs/apdu.md names one), PIN and PUK try counters never above where
 * they were unless the step completed, and no PIN comparison may have happened without its
 * try being counted. Randomness repeats between the runs ({@link Randomness}), so the untorn
 * run is the "new" state the torn ones are compared with.
 */
final class TearSuite {

    private static final long SEED = 20261201L;
    private static final int CI_SAMPLE = 24;

    private final boolean full;
    private final Report report = new Report("tear");
    private final Random sample = new Random(7);

    TearSuite(boolean full) {
        this.full = full;
    }

    /** A step: APDUs after the power-up; stops early when the card was torn. */
    interface Body {
        void run(Sender send) throws Exception;
    }

    /** Sends APDUs and remembers the write count after each (the APDU boundaries). */
    static final class Sender {
        private final ModelCard card;
        final List<Long> boundaries = new ArrayList<>();
        private final boolean recordBoundaries;

        Sender(ModelCard card, boolean recordBoundaries) {
            this.card = card;
            this.recordBoundaries = recordBoundaries;
        }

        final List<CardView> views = new ArrayList<>();

        Response send(byte[] apdu) {
            Response response = card.transmit(apdu);
            if (CardMemory.wasTorn()) {
                throw new Stopped();
            }
            if (recordBoundaries) {
                boundaries.add(CardMemory.writesSoFar());
                views.add(CardView.of(card.applet()));
            }
            return response;
        }
    }

    /** The card lost power: the step ends here. */
    static final class Stopped extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Stopped() {
            super(null, null, false, false);
        }
    }

    Report run() throws Exception {
        byte[] serial = {0x7E, 0x40, 0x00, 0x01, 0x02, 0x03};
        ModelCard card = Cards.blank();
        KeyPair issuer = Sealing.p256Pair();
        KeyPair otherIssuer = Sealing.p256Pair();
        BiPredicate<CardView, CardView> keyAbsentDevice = keyDiscarded("deviceKey",
                "deviceKeyCertificate");
        BiPredicate<CardView, CardView> keyAbsentAuth = keyDiscarded("issuerAuthKey",
                "issuerAuthKeyCertificate");

        // ---- step A
        step("GENERATE KEY PAIR device (RSA)", card, true, keyAbsentDevice,
                s -> s.send(Cards.ext(Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_DEVICE, 0,
                        null, Cards.EXTENDED_LE)));
        step("GENERATE KEY PAIR issuer auth (EC)", card, true, keyAbsentAuth,
                s -> s.send(Cards.cmd(Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_ISSUER_AUTH,
                        0, null, Cards.SHORT_LE)));
        step("SET SERIAL given", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN, 0, serial, Apdus.NO_LE)));
        step("SET SERIAL random", card, false, null, s -> s.send(Cards.cmd(
                Constants.INS_SET_SERIAL, Constants.SERIAL_RANDOM, 0, null, Cards.SHORT_LE)));
        step("PUT ISSUER KEY (first)", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_PUT_ISSUER_KEY, 0, 0,
                Sealing.point((ECPublicKey) otherIssuer.getPublic()), Apdus.NO_LE)));
        step("PUT ISSUER KEY (replacing)", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_PUT_ISSUER_KEY, 0, 0,
                Sealing.point((ECPublicKey) issuer.getPublic()), Apdus.NO_LE)));
        byte[] authCert = Cards.certificate(300, 11);
        step("PUT CERTIFICATE issuer auth (one extended APDU)", card, true, null,
                s -> s.send(Cards.ext(Constants.INS_PUT_CERTIFICATE,
                        Constants.CERT_ISSUER_AUTH_KEY, 0, authCert, Apdus.NO_LE)));
        byte[] deviceCert = Cards.certificate(400, 3);
        step("PUT CERTIFICATE device key (chain of 3)", card, true, null,
                s -> chain(s, Constants.INS_PUT_CERTIFICATE, Constants.CERT_DEVICE_KEY,
                        deviceCert, 150));
        step("PUT CERTIFICATE issuer auth (replacing, chain of 2)", card, true, null,
                s -> chain(s, Constants.INS_PUT_CERTIFICATE, Constants.CERT_ISSUER_AUTH_KEY,
                        Cards.certificate(200, 5), 120));
        step("SIGN DEVICE KEY", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_SIGN_DEVICE_KEY, 0, 0, null, Cards.SHORT_LE)));
        step("GENERATE KEY PAIR issuer auth again (discards certificate, signed key)", card,
                false, keyAbsentAuth, s -> s.send(Cards.cmd(Constants.INS_GENERATE_KEY_PAIR,
                        Constants.KEY_ISSUER_AUTH, 0, null, Cards.SHORT_LE)));
        step("CLOSE INITIALIZATION", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_CLOSE_INITIALIZATION, 0, 0, null, Apdus.NO_LE)));

        // ---- personalization
        byte[] rsaTlv = deviceKeyTlv(card);
        Cards.Initialized init = new Cards.Initialized(card, serial, Sealing.rsaKey(rsaTlv),
                issuer);
        step("PUT PIN PUK (bureau)", card, true, null, s -> s.send(Cards.cmd(
                Constants.INS_PUT_PIN_PUK, 0, 0, Cards.pinPair(3, Cards.BUREAU_PIN, 4,
                        Cards.BUREAU_PUK), Apdus.NO_LE)));
        KeyPair deviceAuth = Sealing.p256Pair();
        byte[] userKey = Sealing.randomUserKey();
        byte[] withPin = Cards.blob(init, userKey, deviceAuth, Cards.PIN, Cards.PUK);
        step("PERSONALIZE, PIN in the blob (extended)", card, false, null,
                s -> s.send(Cards.ext(Constants.INS_PERSONALIZE, 0, 0, withPin, Apdus.NO_LE)));
        byte[] withoutPin = Cards.blob(init, userKey, deviceAuth, null, null);
        step("PERSONALIZE, staged bureau PIN (chain of 2)", card, true, null,
                s -> chain(s, Constants.INS_PERSONALIZE, 0, withoutPin, 200));
        Cards.Personalized perso = new Cards.Personalized(init, deviceAuth, userKey);

        // ---- PIN and PUK (the bureau's PIN is current)
        step("VERIFY wrong PIN", card, false, null, s -> verify(s, "00000000"));
        step("VERIFY right PIN", card, false, null, s -> verify(s, Cards.BUREAU_PIN));
        step("SIGN HASH after VERIFY", card, false, null, s -> {
            verify(s, Cards.BUREAU_PIN);
            s.send(Cards.iso(Constants.INS_SIGN_HASH, 0x9E, 0x9A, new byte[32], Cards.SHORT_LE));
        });
        step("CHANGE REFERENCE DATA (old, new)", card, true, null, s -> s.send(Cards.iso(
                Constants.INS_CHANGE_REFERENCE_DATA, Constants.CHANGE_P1_OLD_AND_NEW,
                Constants.PIN_REF_USER, Cards.pinPair(3, Cards.BUREAU_PIN, 3, Cards.PIN),
                Apdus.NO_LE)));
        step("CHANGE REFERENCE DATA wrong old PIN", card, false, null, s -> s.send(Cards.iso(
                Constants.INS_CHANGE_REFERENCE_DATA, Constants.CHANGE_P1_OLD_AND_NEW,
                Constants.PIN_REF_USER, Cards.pinPair(3, "11111111", 3, "22222222"),
                Apdus.NO_LE)));
        step("VERIFY wrong PIN twice", card, true, null, s -> {
            verify(s, "00000000");
            verify(s, "00000001");
        });
        step("VERIFY wrong PIN, the try that blocks", card, false, null,
                s -> verify(s, "00000002"));
        step("RESET RETRY COUNTER (PUK, new PIN)", card, true, null, s -> s.send(Cards.iso(
                Constants.INS_RESET_RETRY_COUNTER, 0, Constants.PIN_REF_USER,
                Cards.pinPair(4, Cards.BUREAU_PUK, 3, Cards.PIN), Apdus.NO_LE)));
        step("RESET RETRY COUNTER wrong PUK", card, false, null, s -> wrongPuk(s));
        step("ISSUER COMMAND reset PIN", card, true, null, s -> {
            byte[] challenge = s.send(Cards.iso(Constants.INS_GET_CHALLENGE, 0, 0, null,
                    Constants.CHALLENGE_LENGTH)).data();
            byte[] body = Sealing.tlv(Constants.TAG_PIN, "13572468".getBytes());
            s.send(Cards.cmd(Constants.INS_ISSUER_COMMAND, Constants.ISSUER_CMD_RESET_PIN, 0,
                    Cards.issuerCommandData(perso, challenge, Constants.ISSUER_CMD_RESET_PIN,
                            body), Apdus.NO_LE));
        });
        step("RESET RETRY COUNTER wrong PUK four times", card, true, null, s -> {
            for (int i = 0; i < 4; i++) {
                wrongPuk(s);
            }
        });
        step("RESET RETRY COUNTER wrong PUK, the try that blocks and wipes the key", card, false,
                null, s -> wrongPuk(s));
        step("ISSUER COMMAND terminate", card, true, null, s -> {
            byte[] challenge = s.send(Cards.iso(Constants.INS_GET_CHALLENGE, 0, 0, null,
                    Constants.CHALLENGE_LENGTH)).data();
            s.send(Cards.cmd(Constants.INS_ISSUER_COMMAND, Constants.ISSUER_CMD_TERMINATE, 0,
                    Cards.issuerCommandData(perso, challenge, Constants.ISSUER_CMD_TERMINATE,
                            new byte[0]), Apdus.NO_LE));
        });
        report.check(CardView.of(card.applet()).state() == Constants.STATE_TERMINATED,
                "the walk did not end terminated: a step failed untorn");
        return report;
    }

    private static Response verify(Sender s, String pin) {
        return s.send(Cards.iso(Constants.INS_VERIFY, 0, Constants.PIN_REF_USER, pin.getBytes(),
                Apdus.NO_LE));
    }

    private static void wrongPuk(Sender s) {
        s.send(Cards.iso(Constants.INS_RESET_RETRY_COUNTER, 0, Constants.PIN_REF_USER,
                Cards.pinPair(4, "000000000000", 3, "99999999"), Apdus.NO_LE));
    }

    private static void chain(Sender s, byte ins, int p1, byte[] data, int chunk) {
        for (int at = 0; at < data.length; at += chunk) {
            boolean last = at + chunk >= data.length;
            s.send(Apdus.shortApdu(last ? Constants.CLA_PROPRIETARY
                    : Constants.CLA_PROPRIETARY_CHAINING, ins, p1, 0,
                    java.util.Arrays.copyOfRange(data, at, Math.min(data.length, at + chunk)),
                    Apdus.NO_LE));
        }
    }

    private static byte[] deviceKeyTlv(ModelCard card) {
        card.powerCycle();
        card.select();
        return card.transmit(Cards.ext(Constants.INS_GET_DATA,
                Constants.DO_DEVICE_PUBLIC_KEY >> 8, Constants.DO_DEVICE_PUBLIC_KEY & 0xFF, null,
                Cards.EXTENDED_LE)).data();
    }

    /**
     * docs/apdu.md, GENERATE KEY PAIR: "A tear during generation leaves the key marked absent
     * (generate again)", its certificate and the signed device key discarded.
     */
    private static BiPredicate<CardView, CardView> keyDiscarded(String key, String cert) {
        return (before, got) -> {
            for (String name : before.values().keySet()) {
                String want = before.get(name);
                if (name.equals(key + ".present")) {
                    want = "false";
                } else if (name.equals(cert)) {
                    want = "none";
                } else if (name.equals("signedDeviceKey")) {
                    want = "";
                } else if (name.startsWith(key + ".")) {
                    continue;
                }
                if (!want.equals(got.get(name))) {
                    return false;
                }
            }
            return "false".equals(got.get(key + ".present"));
        };
    }

    private void step(String name, ModelCard card, boolean advance,
            BiPredicate<CardView, CardView> documentedThirdState, Body body) throws Exception {
        CardMemory.mark();
        card.powerCycle();
        CardView before = CardView.of(card.applet());

        Sender reference = new Sender(card, true);
        Randomness.deterministic(SEED);
        CardMemory.startCounting(-1);
        runBody(body, reference);
        long n = CardMemory.stopCounting();
        card.powerCycle();
        CardView after = CardView.of(card.applet());
        report.check(!after.equals(before) || name.contains("wrong") || name.contains("VERIFY")
                || name.contains("SIGN HASH"), name + ": the untorn run changed nothing");

        TreeSet<Long> points = new TreeSet<>();
        if (full || n <= CI_SAMPLE) {
            for (long k = 1; k <= n; k++) {
                points.add(k);
            }
        } else {
            for (long k = 1; k <= 4; k++) {
                points.add(k);
                points.add(n + 1 - k);
            }
            for (long boundary : reference.boundaries) {
                if (boundary + 1 <= n) {
                    points.add(boundary + 1);
                }
                if (boundary >= 1) {
                    points.add(boundary);
                }
            }
            while (points.size() < CI_SAMPLE) {
                points.add(1 + (long) (sample.nextDouble() * n));
            }
        }
        int thirdStates = 0;
        for (long k : points) {
            CardMemory.restoreToMark();
            card.powerCycle();
            long failedBefore = failedComparisons(card);
            Randomness.deterministic(SEED);
            CardMemory.startCounting(k);
            runBody(body, new Sender(card, false));
            CardMemory.stopCounting();
            boolean torn = CardMemory.wasTorn();
            card.powerCycle();
            CardView got = CardView.of(card.applet());
            String at = name + ", torn at write " + k + " of " + n;
            report.check(torn, at + ": the write was never reached (the runs differ)");
            // the APDU the cut fell in: its start and end states are "old" and "new"
            int apdu = 0;
            while (apdu < reference.boundaries.size() - 1 && reference.boundaries.get(apdu) < k) {
                apdu++;
            }
            CardView start = apdu == 0 ? before : reference.views.get(apdu - 1);
            CardView end = reference.views.get(apdu);
            boolean whole = got.equals(start) || got.equals(end);
            boolean presentation = !whole && costsOneTry(start, got);
            boolean third = !whole && !presentation && documentedThirdState != null
                    && documentedThirdState.test(start, got);
            if (presentation || third) {
                thirdStates++;
            }
            report.check(whole || presentation || third, at + " (APDU " + apdu
                    + "): neither old nor new; differs from old in " + got.differences(start)
                    + ", from new in " + got.differences(end));
            if (!got.equals(after)) {
                report.check(got.pinTries() <= before.pinTries()
                        && got.pukTries() <= before.pukTries(), at + ": a try counter went up ("
                        + before.pinTries() + "/" + before.pukTries() + " -> " + got.pinTries()
                        + "/" + got.pukTries() + ")");
            }
            long failed = failedComparisons(card) - failedBefore;
            report.check(failed == 0 || got.pinTries() + got.pukTries()
                    <= before.pinTries() + before.pukTries() - failed,
                    at + ": " + failed + " wrong PIN/PUK compared but not every try counted");
            report.check(card.select().sw() == 0x9000, at + ": SELECT fails after the tear");
            report.count("tears", 1);
        }
        // apdu boundaries, as a power cut between two APDUs of the step
        report.count("steps", 1);
        report.count("writes", n);
        report.count("third_states", thirdStates);
        CardMemory.restoreToMark();
        card.powerCycle();
        if (advance) {
            Randomness.deterministic(SEED);
            runBody(body, new Sender(card, false));
            card.powerCycle();
            report.check(CardView.of(card.applet()).equals(after), name
                    + ": the step is not repeatable (state after differs between two runs)");
        }
        Randomness.platform();
        System.out.printf("   tear: %-72s %5d writes, %4d tears%n", name, n, points.size());
    }

    private static void runBody(Body body, Sender sender) throws Exception {
        try {
            sender.send(selectApdu());
            body.run(sender);
        } catch (Stopped stopped) {
            // power was cut: nothing more reaches the card
        }
    }

    private static byte[] selectApdu() {
        return Apdus.shortApdu(0x00, 0xA4, 0x04, 0x00, ModelCard.APPLET_AID, 0x100);
    }

    /**
     * docs/apdu.md, VERIFY: "The try counter is decremented before the comparison (a tear
     * during VERIFY costs a try)": the same for the PUK and for CHANGE's old PIN.
     */
    private static boolean costsOneTry(CardView start, CardView got) {
        List<String> diff = got.differences(start);
        if (diff.size() != 1) {
            return false;
        }
        if (diff.get(0).equals("pin.tries")) {
            return got.pinTries() == start.pinTries() - 1;
        }
        return diff.get(0).equals("puk.tries") && got.pukTries() == start.pukTries() - 1;
    }

    private static long failedComparisons(ModelCard card) {
        try {
            Field field = card.applet().getClass().getDeclaredField("persistent");
            field.setAccessible(true);
            Object persistent = field.get(card.applet());
            long total = 0;
            for (String name : new String[] {"pin", "puk"}) {
                Field pin = persistent.getClass().getDeclaredField(name);
                pin.setAccessible(true);
                total += ((ModelOwnerPIN) pin.get(persistent)).failedComparisons();
            }
            return total;
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }
}
