package sealcard.applet;

import javacard.framework.APDU;
import javacard.framework.APDUException;
import javacard.framework.Applet;
import javacard.framework.ISO7816;
import javacard.framework.ISOException;
import javacard.framework.JCSystem;
import javacard.framework.Util;
import javacardx.apdu.ExtendedLength;

/**
 * The sealcard applet: install, and a dispatcher. {@link #process} checks the class,
 * the command chain and the life-cycle state, hands the command to its family
 * (initialization, data objects, responses) and maps every exception to one status word,
 * aborting any open transaction so a failed command changes nothing.
 */
public final class SealcardApplet extends Applet implements ExtendedLength {

    private final Persistent persistent;
    private final Transients transients;
    private final Crypto crypto;
    private final ResponseSender sender;
    private final ChainedInput chain;
    private final DataObjects dataObjects;
    private final InitializationCommands initialization;
    private final PersonalizationCommands personalization;
    private final PinCommands pins;
    private final UseCommands use;
    private final IssuerCommands issuer;

    private SealcardApplet() {
        persistent = new Persistent();
        transients = new Transients();
        crypto = new Crypto(persistent, transients);
        sender = new ResponseSender(transients);
        chain = new ChainedInput(transients);
        dataObjects = new DataObjects(persistent, transients, crypto, sender);
        initialization = new InitializationCommands(persistent, transients, crypto, sender,
                chain);
        personalization = new PersonalizationCommands(persistent, transients, crypto, chain);
        pins = new PinCommands(persistent, transients);
        use = new UseCommands(persistent, transients, crypto, sender, pins);
        issuer = new IssuerCommands(persistent, transients, crypto, pins);
    }

    /**
     * Installs the applet. Install parameters are not used; the instance AID comes from
     * the install command when present, else the default from the CAP file.
     */
    public static void install(byte[] parameters, short offset, byte length) {
        SealcardApplet applet = new SealcardApplet();
        if (length > 0 && parameters[offset] > 0) {
            applet.register(parameters, (short) (offset + 1), parameters[offset]);
        } else {
            applet.register();
        }
    }

    /** {@inheritDoc} */
    public void process(APDU apdu) {
        try {
            dispatch(apdu);
        } catch (ISOException e) {
            short sw = e.getReason();
            if ((short) (sw & (short) 0xFF00) != Constants.SW_BYTES_REMAINING) {
                cleanUpAfterFailure();
            }
            ISOException.throwIt(sw);
        } catch (APDUException e) {
            cleanUpAfterFailure();
            if (e.getReason() == APDUException.BAD_LENGTH) {
                ISOException.throwIt(Constants.SW_WRONG_LENGTH);
            }
            ISOException.throwIt(Constants.SW_UNKNOWN);
        } catch (Exception e) {
            cleanUpAfterFailure();
            ISOException.throwIt(Constants.SW_UNKNOWN);
        }
    }

    /** {@inheritDoc} A deselected applet forgets the PIN verification. */
    public void deselect() {
        pins.forgetVerification();
    }

    /**
     * Undoes an open transaction, forgets the open chain and any pending answer, and wipes
     * the RAM scratch (it may hold a PIN or decrypted data).
     */
    private void cleanUpAfterFailure() {
        if (JCSystem.getTransactionDepth() != 0) {
            JCSystem.abortTransaction();
        }
        chain.reset();
        sender.discard();
        Util.arrayFillNonAtomic(transients.scratch, (short) 0, Transients.SCRATCH_LENGTH,
                (byte) 0);
    }

    private void dispatch(APDU apdu) {
        byte[] buffer = apdu.getBuffer();
        if (selectingApplet()) {
            chain.reset();
            sender.discard();
            pins.forgetVerification();
            transients.shorts[Transients.CHALLENGE_STATE] = Transients.CHALLENGE_NONE;
            dataObjects.select(apdu);
            return;
        }
        byte cla = (byte) (buffer[ISO7816.OFFSET_CLA] & (byte) ~Constants.CLA_CHAINING_BIT);
        byte ins = buffer[ISO7816.OFFSET_INS];
        if (cla != Constants.CLA_ISO7816 && cla != Constants.CLA_PROPRIETARY) {
            ISOException.throwIt(Constants.SW_CLA_NOT_SUPPORTED);
        }
        passChallenge(cla, ins);
        chain.checkContinues(buffer);
        boolean getResponse = cla == Constants.CLA_ISO7816 && ins == Constants.INS_GET_RESPONSE;
        if (!getResponse) {
            sender.discard();
        }
        boolean chainable = cla == Constants.CLA_PROPRIETARY
                && (ins == Constants.INS_PUT_CERTIFICATE || ins == Constants.INS_PERSONALIZE);
        if (ChainedInput.hasChainingBit(buffer) && !chainable) {
            ISOException.throwIt(Constants.SW_CHAINING_NOT_SUPPORTED);
        }
        if (cla == Constants.CLA_ISO7816) {
            dispatchInterindustry(apdu, ins);
        } else {
            dispatchProprietary(apdu, ins);
        }
    }

    /**
     * The last GET CHALLENGE answer serves the very next command only, and only if that is
     * an ISSUER COMMAND: any command moves it on (issued to in use, or to none).
     */
    private void passChallenge(byte cla, byte ins) {
        short[] shorts = transients.shorts;
        boolean issuerCommand = cla == Constants.CLA_PROPRIETARY
                && ins == Constants.INS_ISSUER_COMMAND;
        shorts[Transients.CHALLENGE_STATE] = issuerCommand
                && shorts[Transients.CHALLENGE_STATE] == Transients.CHALLENGE_ISSUED
                        ? Transients.CHALLENGE_IN_USE : Transients.CHALLENGE_NONE;
    }

    private void dispatchInterindustry(APDU apdu, byte ins) {
        switch (ins) {
            case Constants.INS_GET_RESPONSE:
                sender.getResponse(apdu);
                return;
            case Constants.INS_SELECT:
                // A SELECT reaching process() named no applet on the card (the JCRE
                // selects by AID itself and forwards what it cannot resolve).
                ISOException.throwIt(Constants.SW_FILE_NOT_FOUND);
                return;
            case Constants.INS_VERIFY:
                requireState(Constants.STATE_PERSONALIZED);
                pins.verify(apdu);
                return;
            case Constants.INS_CHANGE_REFERENCE_DATA:
                requireState(Constants.STATE_PERSONALIZED);
                pins.change(apdu);
                return;
            case Constants.INS_RESET_RETRY_COUNTER:
                requireState(Constants.STATE_PERSONALIZED);
                pins.resetRetryCounter(apdu);
                return;
            case Constants.INS_SIGN_HASH:
                requireState(Constants.STATE_PERSONALIZED);
                use.signHash(apdu);
                return;
            case Constants.INS_GET_CHALLENGE:
                requireInitializedOrPersonalized();
                use.getChallenge(apdu);
                return;
            case Constants.INS_INTERNAL_AUTHENTICATE:
                requireInitializedOrPersonalized();
                use.internalAuthenticate(apdu);
                return;
            default:
                ISOException.throwIt(Constants.SW_INS_NOT_SUPPORTED);
        }
    }

    private void dispatchProprietary(APDU apdu, byte ins) {
        switch (ins) {
            case Constants.INS_GET_DATA:
                dataObjects.getData(apdu);
                return;
            case Constants.INS_GENERATE_KEY_PAIR:
                requireState(Constants.STATE_BLANK);
                initialization.generateKeyPair(apdu);
                return;
            case Constants.INS_SET_SERIAL:
                requireState(Constants.STATE_BLANK);
                initialization.setSerial(apdu);
                return;
            case Constants.INS_PUT_ISSUER_KEY:
                requireState(Constants.STATE_BLANK);
                initialization.putIssuerKey(apdu);
                return;
            case Constants.INS_PUT_CERTIFICATE:
                requireState(Constants.STATE_BLANK);
                initialization.putCertificate(apdu);
                return;
            case Constants.INS_SIGN_DEVICE_KEY:
                requireState(Constants.STATE_BLANK);
                initialization.signDeviceKey(apdu);
                return;
            case Constants.INS_CLOSE_INITIALIZATION:
                requireState(Constants.STATE_BLANK);
                initialization.closeInitialization(apdu);
                return;
            case Constants.INS_PUT_PIN_PUK:
                requireState(Constants.STATE_INITIALIZED);
                personalization.putPinPuk(apdu);
                return;
            case Constants.INS_PERSONALIZE:
                requireState(Constants.STATE_INITIALIZED);
                personalization.personalize(apdu);
                return;
            case Constants.INS_ISSUER_COMMAND:
                requireState(Constants.STATE_PERSONALIZED);
                issuer.issuerCommand(apdu);
                return;
            default:
                ISOException.throwIt(Constants.SW_INS_NOT_SUPPORTED);
        }
    }

    private void requireInitializedOrPersonalized() {
        if (persistent.state != Constants.STATE_INITIALIZED) {
            requireState(Constants.STATE_PERSONALIZED);
        }
    }

    /** The state gate: {@code SW_CONDITIONS_NOT_SATISFIED} unless in {@code state}. */
    private void requireState(byte state) {
        if (persistent.state != state) {
            ISOException.throwIt(Constants.SW_CONDITIONS_NOT_SATISFIED);
        }
    }
}
