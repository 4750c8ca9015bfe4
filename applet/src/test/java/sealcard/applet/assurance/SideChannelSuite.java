package sealcard.applet.assurance;

import java.math.BigInteger;
import java.security.KeyPair;
import java.security.SecureRandom;
import java.security.interfaces.ECPublicKey;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import com.licel.jcardsim.bouncycastle.asn1.sec.SECNamedCurves;
import com.licel.jcardsim.bouncycastle.asn1.x9.X9ECParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECDomainParameters;
import com.licel.jcardsim.bouncycastle.crypto.params.ECPublicKeyParameters;
import com.licel.jcardsim.bouncycastle.crypto.signers.ECDSASigner;
import sealcard.applet.Constants;
import sealcard.applet.model.ModelCard;
import sealcard.applet.model.ModelCard.Response;
import sealcard.applet.smoke.Apdus;
import sealcard.applet.smoke.Sealing;

/**
 * Suite 4, side channels that can be measured here.
 *
 * <p>PERSONALIZE with a good issuer signature and (A) a broken OAEP padding, or (B) a good
 * padding around a bad payload: both must answer the same (SW and data), and their times
 * must not tell them apart: Welch's t over thousands of interleaved runs under 4.5 (the
 * usual threshold of dudect-style leakage tests). The time is measured around the in-JVM
 * command, where jCardSim's RSA (Bouncy Castle BigInteger arithmetic) dominates: a weak
 * proxy for a card's timing, which it cannot stand in for (docs/assurance.md says so).
 *
 * <p>ECDSA: SIGN HASH signatures (secp256k1) all verify, all have low S, and no r repeats;
 * INTERNAL AUTHENTICATE signatures (P-256) repeat no r either.
 */
final class SideChannelSuite {

    private static final double T_LIMIT = 4.5;
    private static final int POOL = 40;
    private static final X9ECParameters K1 = SECNamedCurves.getByName("secp256k1");

    private final boolean full;
    private final Report report = new Report("side");
    private final Random random = new Random(4242);

    SideChannelSuite(boolean full) {
        this.full = full;
    }

    Report run() throws Exception {
        timing(full ? 5000 : 500);
        signatures(full ? 20_000 : 800, full ? 5000 : 200);
        return report;
    }

    private void timing(int perClass) throws Exception {
        Cards.Initialized card = Cards.initialized(new byte[] {0x51, 0x0C, 0, 0, 0, 1}, true);
        KeyPair deviceAuth = Sealing.p256Pair();
        byte[] point = Sealing.point((ECPublicKey) deviceAuth.getPublic());
        byte[][] badPadding = new byte[POOL][];
        byte[][] badPayload = new byte[POOL][];
        for (int i = 0; i < POOL; i++) {
            Sealing.Defect defect = Sealing.Defect.values()[1 + i % 4];
            byte[] em = Sealing.oaepEncode(Sealing.payload(Sealing.randomUserKey(), point,
                    Cards.PIN, Cards.PUK), defect);
            badPadding[i] = personalizeApdu(Sealing.blob(card.serial(),
                    Sealing.rawRsa(em, card.deviceKey()), card.issuer().getPrivate()));
            byte[] zeroKey = Sealing.payload(new byte[32], point, Cards.PIN, Cards.PUK);
            badPayload[i] = personalizeApdu(Sealing.blob(card.serial(),
                    Sealing.oaepJdk(zeroKey, card.deviceKey()), card.issuer().getPrivate()));
        }
        ModelCard c = card.card();
        Response first = c.transmit(badPadding[0]);
        for (int i = 0; i < 300; i++) { // warm-up: the JIT compiles both paths
            c.transmit(i % 2 == 0 ? badPadding[i % POOL] : badPayload[i % POOL]);
        }
        long[] a = new long[perClass];
        long[] b = new long[perClass];
        int na = 0;
        int nb = 0;
        while (na < perClass || nb < perClass) {
            boolean pickA = nb >= perClass || (na < perClass && random.nextBoolean());
            byte[] apdu = pickA ? badPadding[random.nextInt(POOL)] : badPayload[random.nextInt(POOL)];
            long t0 = System.nanoTime();
            Response r = c.transmit(apdu);
            long t = System.nanoTime() - t0;
            report.check(r.sw() == first.sw() && Arrays.equals(r.data(), first.data()),
                    (pickA ? "bad padding" : "bad payload") + " answered " + r + ", not " + first);
            if (pickA) {
                a[na++] = t;
            } else {
                b[nb++] = t;
            }
        }
        report.check(first.sw() == (Constants.SW_DATA_INVALID & 0xFFFF),
                "a bad padding answered " + first + ", expected 6984");
        double raw = welch(a, b, Long.MAX_VALUE);
        long crop = percentile(a, b, 0.95);
        double cropped = welch(a, b, crop);
        System.out.printf("   side: PERSONALIZE bad padding vs bad payload, %d runs each:"
                + " median %.3f ms vs %.3f ms, Welch t = %.2f (all), %.2f (below the 95th"
                + " percentile)%n", perClass, median(a) / 1e6, median(b) / 1e6, raw, cropped);
        String verdict = String.format("timing tells bad padding from bad payload: |t| = %.2f"
                + " >= %.1f", cropped, T_LIMIT);
        if (full) {
            report.check(Math.abs(cropped) < T_LIMIT, verdict);
        } else if (Math.abs(cropped) >= T_LIMIT) {
            // CI runs a few hundred per class on a shared machine: the time is reported, and
            // asserted only at full size (docs/assurance.md); the answers are asserted always
            System.out.println("   side: NOTE (not asserted at CI size) " + verdict);
        }
        report.count("timing_runs", 2L * perClass);
        report.count("welch_t_x100", Math.round(Math.abs(cropped) * 100));
    }

    private static byte[] personalizeApdu(byte[] blob) {
        return Apdus.extendedApdu(Constants.CLA_PROPRIETARY, Constants.INS_PERSONALIZE, 0, 0,
                blob, Apdus.NO_LE);
    }

    private void signatures(int signs, int auths) throws Exception {
        Cards.Personalized card = Cards.personalized(new byte[] {0x51, 0x0C, 0, 0, 0, 2});
        ModelCard c = card.card();
        c.powerCycle();
        c.select();
        Cards.expect("VERIFY", Cards.verify(c, Cards.PIN), Constants.SW_OK);
        ECDSASigner verifier = new ECDSASigner();
        ECDomainParameters domain = new ECDomainParameters(K1.getCurve(), K1.getG(), K1.getN(),
                K1.getH());
        verifier.init(false, new ECPublicKeyParameters(K1.getG().multiply(
                new BigInteger(1, card.userKey())).normalize(), domain));
        BigInteger half = K1.getN().shiftRight(1);
        Set<BigInteger> seen = new HashSet<>();
        SecureRandom hashes = new SecureRandom();
        int high = 0;
        int bad = 0;
        for (int i = 0; i < signs; i++) {
            byte[] hash = new byte[32];
            hashes.nextBytes(hash);
            Response r = c.transmit(Apdus.shortApdu(Constants.CLA_ISO7816, Constants.INS_SIGN_HASH,
                    0x9E, 0x9A, hash, Cards.SHORT_LE));
            if (!report.check(r.sw() == 0x9000, "SIGN HASH answered " + r)) {
                continue;
            }
            BigInteger[] rs = Der.decode(r.data());
            if (rs[1].compareTo(half) > 0) {
                high++;
            }
            if (!verifier.verifySignature(hash, rs[0], rs[1])) {
                bad++;
            }
            report.check(seen.add(rs[0]), "SIGN HASH repeated r " + rs[0].toString(16));
        }
        report.check(high == 0, high + " of " + signs + " SIGN HASH signatures have a high S");
        report.check(bad == 0, bad + " of " + signs + " SIGN HASH signatures do not verify");
        report.count("sign_hash", signs);
        Set<BigInteger> authR = new HashSet<>();
        for (int i = 0; i < auths; i++) {
            byte[] challenge = new byte[16];
            hashes.nextBytes(challenge);
            Response r = c.transmit(Apdus.shortApdu(Constants.CLA_ISO7816,
                    Constants.INS_INTERNAL_AUTHENTICATE, 0, 0, challenge, Cards.SHORT_LE));
            if (report.check(r.sw() == 0x9000, "INTERNAL AUTHENTICATE answered " + r)) {
                report.check(authR.add(Der.decode(r.data())[0]), "INTERNAL AUTHENTICATE repeated r");
            }
        }
        report.count("internal_authenticate", auths);
        System.out.printf("   side: %d SIGN HASH signatures: all verify, low S, r distinct;"
                + " %d INTERNAL AUTHENTICATE: r distinct%n", signs, auths);
    }

    static double welch(long[] a, long[] b, long crop) {
        double[] sa = stats(a, crop);
        double[] sb = stats(b, crop);
        return (sa[0] - sb[0]) / Math.sqrt(sa[1] / sa[2] + sb[1] / sb[2]);
    }

    /** mean, variance, n of the values below {@code crop}. */
    private static double[] stats(long[] values, long crop) {
        double sum = 0;
        int n = 0;
        for (long v : values) {
            if (v < crop) {
                sum += v;
                n++;
            }
        }
        double mean = sum / n;
        double squares = 0;
        for (long v : values) {
            if (v < crop) {
                squares += (v - mean) * (v - mean);
            }
        }
        return new double[] {mean, squares / (n - 1), n};
    }

    private static long percentile(long[] a, long[] b, double q) {
        long[] all = new long[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        Arrays.sort(all);
        return all[(int) (q * (all.length - 1))];
    }

    private static double median(long[] values) {
        long[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }
}
