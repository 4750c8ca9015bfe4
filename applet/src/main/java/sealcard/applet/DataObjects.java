package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;

/**
 * Reading the card's public data: the SELECT answer and GET DATA ({@code 80 CA P1 P2}).
 * Nothing here ever touches a private key.
 */
final class DataObjects {

    private static final byte VERSION_LENGTH = (byte) 2;
    private static final byte STATE_LENGTH = (byte) 1;
    private static final byte CAPABILITIES_LENGTH = (byte) 2;
    private static final byte YES = (byte) 1;
    private static final byte NO = (byte) 0;
    private static final short PIN_STATUS_LENGTH = (short) 4;
    private static final short PLATFORM_LENGTH = (short) 8;

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final ResponseSender sender;

    DataObjects(Persistent persistent, Transients transients, Crypto crypto,
            ResponseSender sender) {
        this.persistent = persistent;
        this.transients = transients;
        this.crypto = crypto;
        this.sender = sender;
    }

    /** The SELECT answer: version, state, capabilities and (once set) the serial. */
    void select(APDU apdu) {
        sender.sendScratch(apdu, writeStatus(transients.scratch, (short) 0));
    }

    /** GET DATA. */
    void getData(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        IncomingData.requireNoData(apdu);
        short object = Util.getShort(buffer, ISO7816.OFFSET_P1);
        byte[] scratch = transients.scratch;
        switch (object) {
            case Constants.DO_SERIAL:
                requirePresent(persistent.serialLength != 0);
                sender.send(apdu, persistent.serial, (short) 0, persistent.serialLength);
                return;
            case Constants.DO_STATUS:
                sender.sendScratch(apdu, writeStatus(scratch, (short) 0));
                return;
            case Constants.DO_PLATFORM:
                sender.sendScratch(apdu, writePlatform(scratch));
                return;
            case Constants.DO_DEVICE_PUBLIC_KEY:
                requirePresent(persistent.deviceKeyPresent);
                sender.sendScratch(apdu,
                        PublicKeys.writeRsaTlv(persistent.devicePublicKey, scratch, (short) 0));
                return;
            case Constants.DO_ISSUER_AUTH_PUBLIC_KEY:
                requirePresent(persistent.issuerAuthKeyPresent);
                sender.sendScratch(apdu, PublicKeys.writeEcPoint(persistent.issuerAuthPublicKey,
                        scratch, (short) 0));
                return;
            case Constants.DO_ISSUER_PUBLIC_KEY:
                requirePresent(persistent.isIssuerKeyPresent());
                sender.sendScratch(apdu,
                        PublicKeys.writeEcPoint(persistent.issuerKey(), scratch, (short) 0));
                return;
            case Constants.DO_DEVICE_KEY_CERT:
                sendCertificate(apdu, persistent.deviceKeyCertificate);
                return;
            case Constants.DO_ISSUER_AUTH_KEY_CERT:
                sendCertificate(apdu, persistent.issuerAuthKeyCertificate);
                return;
            case Constants.DO_SIGNED_DEVICE_KEY:
                requirePresent(persistent.signedDeviceKeyLength != 0);
                sender.send(apdu, persistent.signedDeviceKey, (short) 0,
                        persistent.signedDeviceKeyLength);
                return;
            case Constants.DO_USER_PUBLIC_KEY:
                requirePresent(persistent.userPublicPointLength != 0);
                sender.send(apdu, persistent.userPublicPoint, (short) 0,
                        persistent.userPublicPointLength);
                return;
            case Constants.DO_PIN_STATUS:
                scratch[0] = persistent.pinSet ? YES : NO;
                scratch[1] = persistent.pin.getTriesRemaining();
                scratch[2] = persistent.puk.getTriesRemaining();
                // A blocked PUK wipes the user key, and the issuer may reset the PIN after:
                // only this byte tells the holder that the card can no longer sign.
                scratch[3] = persistent.userKeyPresent ? YES : NO;
                sender.sendScratch(apdu, PIN_STATUS_LENGTH);
                return;
            default:
                ISOException.throwIt(Constants.SW_INCORRECT_P1P2);
        }
    }

    /**
     * The platform as the applet sees it: {@code JCSystem.getVersion()}, then the free
     * persistent, CLEAR_ON_RESET and CLEAR_ON_DESELECT memory (each a short, so at most
     * 32767 however much more the card has).
     */
    private static short writePlatform(byte[] out) {
        short at = Util.setShort(out, (short) 0, JCSystem.getVersion());
        at = Util.setShort(out, at,
                JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_PERSISTENT));
        at = Util.setShort(out, at,
                JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_TRANSIENT_RESET));
        Util.setShort(out, at,
                JCSystem.getAvailableMemory(JCSystem.MEMORY_TYPE_TRANSIENT_DESELECT));
        return PLATFORM_LENGTH;
    }

    private void sendCertificate(APDU apdu, CertificateSlot slot) {
        requirePresent(slot.isPresent());
        sender.send(apdu, slot.current(), (short) 0, slot.length());
    }

    private static void requirePresent(boolean present) {
        if (!present) {
            ISOException.throwIt(Constants.SW_REFERENCED_DATA_NOT_FOUND);
        }
    }

    /**
     * Writes the status TLVs ({@code TAG_VERSION}, {@code TAG_STATE},
     * {@code TAG_CAPABILITIES}, {@code TAG_SERIAL} once set).
     *
     * @return their length
     */
    private short writeStatus(byte[] out, short offset) {
        short at = offset;
        out[at++] = Constants.TAG_VERSION;
        out[at++] = VERSION_LENGTH;
        at = Util.setShort(out, at, Constants.APPLET_VERSION);
        out[at++] = Constants.TAG_STATE;
        out[at++] = STATE_LENGTH;
        out[at++] = persistent.state;
        out[at++] = Constants.TAG_CAPABILITIES;
        out[at++] = CAPABILITIES_LENGTH;
        at = Util.setShort(out, at, crypto.capabilities());
        if (persistent.serialLength != 0) {
            out[at++] = Constants.TAG_SERIAL;
            out[at++] = (byte) persistent.serialLength;
            at = Util.arrayCopyNonAtomic(persistent.serial, (short) 0, out, at,
                    persistent.serialLength);
        }
        return (short) (at - offset);
    }
}
