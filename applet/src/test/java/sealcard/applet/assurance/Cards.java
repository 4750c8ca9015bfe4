package sealcard.applet.assurance;

import java.nio.file.Path;
import java.security.KeyPair;
import java.security.interfaces.ECPublicKey;
import java.security.interfaces.RSAPublicKey;
import sealcard.applet.Constants;
import sealcard.applet.model.CardView;
import sealcard.applet.model.ModelCard;
import sealcard.applet.model.ModelCard.Response;
import sealcard.applet.smoke.Apdus;
import sealcard.applet.smoke.Sealing;

/**
 * Cards in each life-cycle state, made through the applet's own APDUs (step A, PERSONALIZE),
 * and the APDUs the suites send. Test keys live here: the issuer's P-256 key pair signs the
 * blobs, as the issuer HSM does.
 */
final class Cards {

    static final String PIN = "48151623";
    static final String PUK = "421110815162";
    static final String BUREAU_PIN = "97531864";
    static final String BUREAU_PUK = "864297531864";
    static final int SHORT_LE = 0x100;
    static final int EXTENDED_LE = 0xFFFF;

    private Cards() {
    }

    static Path appletClasses() {
        String path = System.getProperty("sealcard.applet.classes", "build/applet/classes");
        return Path.of(path);
    }

    static ModelCard blank() {
        ModelCard card = new ModelCard(appletClasses());
        card.select();
        return card;
    }

    /** An initialized card, the issuer key that it trusts, and its device key. */
    record Initialized(ModelCard card, byte[] serial, RSAPublicKey deviceKey, KeyPair issuer) {
        CardView view() {
            return CardView.of(card.applet());
        }
    }

    /** A personalized card: PIN and PUK from the blob, and the device authentication key. */
    record Personalized(Initialized init, KeyPair deviceAuth, byte[] userKey) {
        ModelCard card() {
            return init.card();
        }
    }

    static byte[] cmd(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    static byte[] iso(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.shortApdu(Constants.CLA_ISO7816, ins, p1, p2, data, le);
    }

    static byte[] ext(int ins, int p1, int p2, byte[] data, int le) {
        return Apdus.extendedApdu(Constants.CLA_PROPRIETARY, ins, p1, p2, data, le);
    }

    static void expect(String what, Response response, int sw) {
        if (response.sw() != (sw & 0xFFFF)) {
            throw new IllegalStateException(what + ": SW " + response + ", expected "
                    + String.format("%04X", sw & 0xFFFF));
        }
    }

    /** A minimal DER SEQUENCE standing in for a certificate. */
    static byte[] certificate(int contentLength, int fill) {
        byte[] out = new byte[contentLength + (contentLength < 0x80 ? 2 : contentLength < 0x100 ? 3 : 4)];
        int at = 0;
        out[at++] = 0x30;
        if (contentLength < 0x80) {
            out[at++] = (byte) contentLength;
        } else if (contentLength < 0x100) {
            out[at++] = (byte) 0x81;
            out[at++] = (byte) contentLength;
        } else {
            out[at++] = (byte) 0x82;
            out[at++] = (byte) (contentLength >> 8);
            out[at++] = (byte) contentLength;
        }
        for (int i = 0; i < contentLength; i++) {
            out[at + i] = (byte) (fill + i);
        }
        return out;
    }

    /** Step A on a fresh card; {@code close} false leaves it BLANK with everything in. */
    static Initialized initialized(byte[] serial, boolean close) throws Exception {
        ModelCard card = blank();
        Response rsa = card.transmit(ext(Constants.INS_GENERATE_KEY_PAIR, Constants.KEY_DEVICE,
                0, null, EXTENDED_LE));
        expect("GENERATE KEY PAIR device", rsa, Constants.SW_OK);
        expect("GENERATE KEY PAIR issuer auth", card.transmit(cmd(Constants.INS_GENERATE_KEY_PAIR,
                Constants.KEY_ISSUER_AUTH, 0, null, SHORT_LE)), Constants.SW_OK);
        expect("SET SERIAL", card.transmit(cmd(Constants.INS_SET_SERIAL, Constants.SERIAL_GIVEN,
                0, serial, Apdus.NO_LE)), Constants.SW_OK);
        KeyPair issuer = Sealing.p256Pair();
        expect("PUT ISSUER KEY", card.transmit(cmd(Constants.INS_PUT_ISSUER_KEY, 0, 0,
                Sealing.point((ECPublicKey) issuer.getPublic()), Apdus.NO_LE)), Constants.SW_OK);
        expect("PUT CERTIFICATE", card.transmit(ext(Constants.INS_PUT_CERTIFICATE,
                Constants.CERT_ISSUER_AUTH_KEY, 0, certificate(300, 7), Apdus.NO_LE)),
                Constants.SW_OK);
        expect("SIGN DEVICE KEY", card.transmit(cmd(Constants.INS_SIGN_DEVICE_KEY, 0, 0, null,
                SHORT_LE)), Constants.SW_OK);
        if (close) {
            expect("CLOSE INITIALIZATION", card.transmit(cmd(Constants.INS_CLOSE_INITIALIZATION,
                    0, 0, null, Apdus.NO_LE)), Constants.SW_OK);
        }
        return new Initialized(card, serial, Sealing.rsaKey(rsa.data()), issuer);
    }

    /** A sealed blob for the card, as the issuer HSM makes it. */
    static byte[] blob(Initialized card, byte[] userKey, KeyPair deviceAuth, String pin,
            String puk) throws Exception {
        byte[] payload = Sealing.payload(userKey,
                Sealing.point((ECPublicKey) deviceAuth.getPublic()), pin, puk);
        return Sealing.blob(card.serial(), Sealing.oaepJdk(payload, card.deviceKey()),
                card.issuer().getPrivate());
    }

    static Response personalize(ModelCard card, byte[] blob) {
        return card.transmit(ext(Constants.INS_PERSONALIZE, 0, 0, blob, Apdus.NO_LE));
    }

    static Personalized personalized(byte[] serial) throws Exception {
        Initialized init = initialized(serial, true);
        KeyPair deviceAuth = Sealing.p256Pair();
        byte[] userKey = Sealing.randomUserKey();
        expect("PERSONALIZE", personalize(init.card(), blob(init, userKey, deviceAuth, PIN, PUK)),
                Constants.SW_OK);
        return new Personalized(init, deviceAuth, userKey);
    }

    static Response verify(ModelCard card, String pin) {
        return card.transmit(iso(Constants.INS_VERIFY, 0, Constants.PIN_REF_USER,
                pin.getBytes(), Apdus.NO_LE));
    }

    static byte[] pinPair(int firstTag, String first, int secondTag, String second) {
        return Sealing.concat(Sealing.tlv(firstTag, first.getBytes()),
                Sealing.tlv(secondTag, second.getBytes()));
    }

    /** The signature the issuer makes for ISSUER COMMAND (docs/apdu.md). */
    static byte[] issuerCommandData(Personalized card, byte[] challenge, int p1, byte[] body)
            throws Exception {
        byte[] serial = card.init().serial();
        byte[] message = Sealing.concat("SCIC".getBytes(), new byte[] {(byte) serial.length},
                serial, challenge, new byte[] {Constants.INS_ISSUER_COMMAND, (byte) p1, 0,
                    (byte) body.length}, body);
        byte[] signature = Sealing.ecdsa(card.deviceAuth().getPrivate(), message);
        return Sealing.concat(new byte[] {(byte) body.length}, body, signature);
    }
}
