package sealcard.applet.assurance;

import java.security.KeyPair;
import java.security.interfaces.ECPublicKey;
import java.util.Arrays;
import java.util.Random;
import java.util.Set;
import sealcard.applet.Constants;
import sealcard.applet.model.CardMemory;
import sealcard.applet.model.CardView;
import sealcard.applet.model.ModelCard;
import sealcard.applet.model.ModelCard.Response;
import sealcard.applet.smoke.Apdus;
import sealcard.applet.smoke.Sealing;

/**
 * Suite 3, mutated sealed blobs: an initialized card gets PERSONALIZE with blobs that are
 * each wrong in one way (bits, lengths, fields, another card's serial, another issuer, a
 * ciphertext or payload re-signed by the right issuer, the high-S twin of a good signature).
 * Every one must be refused with one of the blob SWs of docs/apdu.md, answer no data, and
 * leave the card's state exactly as it was. The good blob is accepted at the end (and undone
 * through the memory model), so the refusals are not a broken fixture's.
 */
final class BlobSuite {

    private static final Set<Integer> REFUSALS = Set.of(0x6A80, 0x6A88, 0x6982, 0x6984, 0x6700);

    private final int target;
    private final Report report = new Report("blobs");
    private final Random random = new Random(31337);

    BlobSuite(boolean full) {
        this.target = full ? 12_000 : 800;
    }

    Report run() throws Exception {
        byte[] serial = {0x5B, 0x10, 0x00, 0x00, 0x00, 0x01};
        Cards.Initialized card = Cards.initialized(serial, true);
        Cards.Initialized other = new Cards.Initialized(null, new byte[] {0x5B, 0x10, 0, 0, 0, 2},
                card.deviceKey(), card.issuer());
        KeyPair otherIssuer = Sealing.p256Pair();
        KeyPair deviceAuth = Sealing.p256Pair();
        byte[] userKey = Sealing.randomUserKey();
        byte[] good = Cards.blob(card, userKey, deviceAuth, Cards.PIN, Cards.PUK);
        byte[] payload = Sealing.payload(userKey, Sealing.point((ECPublicKey) deviceAuth.getPublic()),
                Cards.PIN, Cards.PUK);
        CardMemory.mark();
        CardView baseline = card.view();

        int done = 0;
        while (done < target) {
            int kind = random.nextInt(100);
            String what;
            byte[] blob;
            if (kind < 30) {
                what = "bits";
                blob = good.clone();
                int flips = 1 + random.nextInt(4);
                java.util.Set<Integer> bits = new java.util.HashSet<>(); // distinct: two flips
                while (bits.size() < flips) { // of one bit would give the good blob back
                    bits.add(random.nextInt(blob.length * 8));
                }
                for (int bit : bits) {
                    blob[bit / 8] ^= (byte) (1 << (bit % 8));
                }
            } else if (kind < 40) {
                what = "length";
                blob = random.nextBoolean()
                        ? Arrays.copyOf(good, 1 + random.nextInt(good.length - 1))
                        : Sealing.concat(good, randomBytes(1 + random.nextInt(40)));
            } else if (kind < 58) {
                what = "field";
                blob = fieldEdit(good);
            } else if (kind < 63) {
                what = "serial";
                blob = random.nextBoolean()
                        ? Cards.blob(other, userKey, deviceAuth, Cards.PIN, Cards.PUK)
                        : withSerial(Cards.blob(other, userKey, deviceAuth, Cards.PIN, Cards.PUK),
                                serial);
            } else if (kind < 68) {
                what = "issuer";
                blob = Sealing.blob(serial, Sealing.oaepJdk(payload, card.deviceKey()),
                        otherIssuer.getPrivate());
            } else if (kind < 80) {
                what = "resigned_ciphertext";
                byte[] ciphertext = Sealing.oaepJdk(payload, card.deviceKey());
                int bit = random.nextInt(ciphertext.length * 8);
                ciphertext[bit / 8] ^= (byte) (1 << (bit % 8));
                if (random.nextInt(10) == 0) {
                    Arrays.fill(ciphertext, (byte) 0xFF); // >= the modulus
                }
                blob = Sealing.blob(serial, ciphertext, card.issuer().getPrivate());
            } else if (kind < 98) {
                what = "resigned_payload";
                blob = badPayloadBlob(card, userKey, deviceAuth);
            } else {
                what = "high_s";
                blob = highSTwin(good);
            }
            attempt(card, blob, what, baseline);
            done++;
        }
        // the control: the good blob personalizes this card
        Response ok = Cards.personalize(card.card(), good);
        report.check(ok.sw() == 0x9000, "control: the good blob was refused: " + ok);
        CardMemory.restoreToMark();
        card.card().powerCycle();
        report.check(card.view().equals(baseline), "control: the memory model did not undo it");
        report.count("mutations", done);
        return report;
    }

    private void attempt(Cards.Initialized card, byte[] blob, String what, CardView baseline) {
        ModelCard c = card.card();
        c.powerCycle();
        c.select();
        Response response = random.nextInt(4) == 0 ? chained(c, blob)
                : Cards.personalize(c, blob);
        report.count(what, 1);
        boolean refused = REFUSALS.contains(response.sw());
        report.check(refused, what + ": answered " + response + " (blob "
                + CardView.hex(blob).substring(0, Math.min(64, blob.length * 2)) + "...)");
        report.check(response.data().length == 0, what + ": a refusal answered data");
        if (what.equals("high_s")) {
            // the twin verifies under plain ECDSA: only the card's low-S rule refuses it (6982)
            report.check(response.sw() == 0x6982, "high-S twin: answered " + response
                    + ", not 6982 (the issuer signature's low-S rule, docs/sealed-blob.md)");
        }
        CardView now = card.view();
        if (response.sw() == 0x9000) {
            CardMemory.restoreToMark();
            c.powerCycle();
        } else {
            report.check(now.equals(baseline), what + ": refused but the card changed: "
                    + now.differences(baseline));
        }
    }

    private Response chained(ModelCard card, byte[] blob) {
        int chunk = 40 + random.nextInt(200);
        Response response = null;
        for (int at = 0; at < blob.length; at += chunk) {
            boolean last = at + chunk >= blob.length;
            response = card.transmit(Apdus.shortApdu(last ? Constants.CLA_PROPRIETARY
                    : Constants.CLA_PROPRIETARY_CHAINING, Constants.INS_PERSONALIZE, 0, 0,
                    Arrays.copyOfRange(blob, at, Math.min(blob.length, at + chunk)),
                    Apdus.NO_LE));
            if (!last && response.sw() != 0x9000) {
                return response;
            }
        }
        return response;
    }

    private byte[] randomBytes(int n) {
        byte[] out = new byte[n];
        random.nextBytes(out);
        return out;
    }

    /** One framing field of the blob set to a wrong value. */
    private byte[] fieldEdit(byte[] good) {
        byte[] blob = good.clone();
        int serialLength = blob[4];
        int lengthField = 5 + serialLength;
        int signatureLength = 5 + serialLength + 2 + 256;
        switch (random.nextInt(7)) {
            case 0 -> blob[random.nextInt(3)] ^= (byte) (1 + random.nextInt(255)); // magic
            case 1 -> blob[3] = (byte) (random.nextBoolean() ? 0 : 2 + random.nextInt(254));
            case 2 -> blob[4] = (byte) new int[] {0, 3, serialLength - 1, serialLength + 1, 17,
                255}[random.nextInt(6)];
            case 3 -> {
                int value = new int[] {0, 0xFF, 0x0101, 0x0200, 0xFFFF}[random.nextInt(5)];
                blob[lengthField] = (byte) (value >> 8);
                blob[lengthField + 1] = (byte) value;
            }
            case 4 -> blob[signatureLength] = (byte) new int[] {0, 7, 73, 255,
                (blob[signatureLength] & 0xFF) - 1, (blob[signatureLength] & 0xFF) + 1}[
                random.nextInt(6)];
            case 5 -> blob[signatureLength + 1 + random.nextInt(2)] ^= (byte) 0x01; // DER head
            default -> blob[signatureLength + 3] = (byte) (blob[signatureLength + 3] + 1); // r len
        }
        return blob;
    }

    private static byte[] withSerial(byte[] blob, byte[] serial) {
        byte[] out = blob.clone();
        System.arraycopy(serial, 0, out, 5, serial.length);
        return out;
    }

    private static byte[] highSTwin(byte[] good) {
        int signatureLengthAt = 5 + good[4] + 2 + 256;
        byte[] signature = Arrays.copyOfRange(good, signatureLengthAt + 1, good.length);
        byte[] twin = Der.twin(signature, Der.P256_N);
        return Sealing.concat(Arrays.copyOf(good, signatureLengthAt),
                new byte[] {(byte) twin.length}, twin);
    }

    /** A well-signed blob whose OAEP padding or payload is wrong in one way. */
    private byte[] badPayloadBlob(Cards.Initialized card, byte[] userKey, KeyPair deviceAuth)
            throws Exception {
        byte[] point = Sealing.point((ECPublicKey) deviceAuth.getPublic());
        int choice = random.nextInt(14);
        if (choice < 4) {
            Sealing.Defect defect = Sealing.Defect.values()[1 + choice];
            byte[] em = Sealing.oaepEncode(Sealing.payload(userKey, point, Cards.PIN, Cards.PUK),
                    defect);
            return Sealing.blob(card.serial(), Sealing.rawRsa(em, card.deviceKey()),
                    card.issuer().getPrivate());
        }
        byte[] payload = switch (choice) {
            case 4 -> Sealing.payload(new byte[32], point, Cards.PIN, Cards.PUK);
            case 5 -> Sealing.payload(Sealing.scalar(Sealing.SECP256K1_N), point, Cards.PIN,
                    Cards.PUK);
            case 6 -> {
                byte[] off = point.clone();
                off[64] ^= 1; // off the curve
                yield Sealing.payload(userKey, off, Cards.PIN, Cards.PUK);
            }
            case 7 -> Sealing.payload(userKey, point, "12a45678", Cards.PUK);
            case 8 -> Sealing.payload(userKey, point, "123", Cards.PUK);
            case 9 -> Sealing.payload(userKey, point, Cards.PIN, null);
            case 10 -> Sealing.concat(Sealing.payload(userKey, point, Cards.PIN, Cards.PUK),
                    new byte[] {0});
            case 11 -> {
                byte[] p = Sealing.payload(userKey, point, null, null);
                p[0] = 0x02; // tags swapped
                yield p;
            }
            case 12 -> Sealing.payload(Arrays.copyOf(userKey, 31), point, null, null);
            default -> Sealing.payload(userKey, point, Cards.PIN, "1234567890123");
        };
        return Sealing.blob(card.serial(), Sealing.oaepJdk(payload, card.deviceKey()),
                card.issuer().getPrivate());
    }

}
