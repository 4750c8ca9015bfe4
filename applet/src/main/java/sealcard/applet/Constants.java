package sealcard.applet;

/**
 * Every value of the card contract, docs/apdu.md, under the names used there.
 *
 * <p>One constant per line, always in the form
 * {@code public static final <byte|short> NAME = (<byte|short>) 0x..;}: a host test parses
 * these lines and compares them with host/sealcard/card/constants.py. Values that are
 * private to the applet (buffer sizes, platform algorithm codes) live in the classes that
 * use them, not here.
 */
public final class Constants {

    private Constants() {
    }

    // ---- Applet ----------------------------------------------------------------------
    public static final short APPLET_VERSION = (short) 0x0101;

    // ---- Classes (CLA) -----------------------------------------------------------------
    public static final byte CLA_ISO7816 = (byte) 0x00;
    public static final byte CLA_PROPRIETARY = (byte) 0x80;
    public static final byte CLA_PROPRIETARY_CHAINING = (byte) 0x90;
    public static final byte CLA_CHAINING_BIT = (byte) 0x10;

    // ---- Instructions (INS) ------------------------------------------------------------
    public static final byte INS_SELECT = (byte) 0xA4;
    public static final byte INS_GET_RESPONSE = (byte) 0xC0;
    public static final byte INS_SET_SERIAL = (byte) 0x30;
    public static final byte INS_PUT_ISSUER_KEY = (byte) 0x32;
    public static final byte INS_PUT_CERTIFICATE = (byte) 0x34;
    public static final byte INS_SIGN_DEVICE_KEY = (byte) 0x36;
    public static final byte INS_CLOSE_INITIALIZATION = (byte) 0x3E;
    public static final byte INS_GENERATE_KEY_PAIR = (byte) 0x46;
    public static final byte INS_GET_DATA = (byte) 0xCA;
    public static final byte INS_PUT_PIN_PUK = (byte) 0x38;
    public static final byte INS_PERSONALIZE = (byte) 0x50;
    public static final byte INS_VERIFY = (byte) 0x20;
    public static final byte INS_CHANGE_REFERENCE_DATA = (byte) 0x24;
    public static final byte INS_RESET_RETRY_COUNTER = (byte) 0x2C;
    public static final byte INS_SIGN_HASH = (byte) 0x2A;
    public static final byte INS_GET_CHALLENGE = (byte) 0x84;
    public static final byte INS_INTERNAL_AUTHENTICATE = (byte) 0x88;
    public static final byte INS_ISSUER_COMMAND = (byte) 0x60;

    // ---- SELECT ------------------------------------------------------------------------
    public static final byte SELECT_P1_BY_NAME = (byte) 0x04;

    // ---- GENERATE KEY PAIR: P1 ---------------------------------------------------------
    public static final byte KEY_DEVICE = (byte) 0x01;
    public static final byte KEY_ISSUER_AUTH = (byte) 0x02;

    // ---- SET SERIAL: P1 ----------------------------------------------------------------
    public static final byte SERIAL_GIVEN = (byte) 0x00;
    public static final byte SERIAL_RANDOM = (byte) 0x01;

    // ---- PUT CERTIFICATE: P1 -----------------------------------------------------------
    public static final byte CERT_DEVICE_KEY = (byte) 0x01;
    public static final byte CERT_ISSUER_AUTH_KEY = (byte) 0x02;

    // ---- PIN references and P1/P2 of the PIN, signing and issuer commands -------------
    public static final byte PIN_REF_USER = (byte) 0x81;
    public static final byte CHANGE_P1_OLD_AND_NEW = (byte) 0x00;
    public static final byte CHANGE_P1_INITIAL = (byte) 0x01;
    public static final short PSO_P1P2_SIGN = (short) 0x9E9A;
    public static final byte ISSUER_CMD_RESET_PIN = (byte) 0x01;
    public static final byte ISSUER_CMD_TERMINATE = (byte) 0x02;

    // ---- PIN and PUK -------------------------------------------------------------------
    public static final byte PIN_TRY_LIMIT = (byte) 0x03;
    public static final byte PUK_TRY_LIMIT = (byte) 0x05;
    public static final byte PIN_MIN_LENGTH = (byte) 0x04;
    public static final byte PIN_MAX_LENGTH = (byte) 0x0C;
    public static final byte PUK_MIN_LENGTH = (byte) 0x08;
    public static final byte PUK_MAX_LENGTH = (byte) 0x0C;

    // ---- Sizes -------------------------------------------------------------------------
    public static final short SERIAL_MIN_LENGTH = (short) 0x0004;
    public static final short SERIAL_MAX_LENGTH = (short) 0x0010;
    public static final short RANDOM_SERIAL_LENGTH = (short) 0x0008;
    public static final short EC_POINT_LENGTH = (short) 0x0041;
    public static final short RSA_MODULUS_LENGTH = (short) 0x0100;
    public static final short MAX_CERT_LENGTH = (short) 0x0400;
    public static final short CHALLENGE_LENGTH = (short) 0x0010;

    // ---- TLV tags ----------------------------------------------------------------------
    public static final byte TAG_VERSION = (byte) 0x80;
    public static final byte TAG_STATE = (byte) 0x81;
    public static final byte TAG_CAPABILITIES = (byte) 0x82;
    public static final byte TAG_SERIAL = (byte) 0x83;
    public static final byte TAG_RSA_MODULUS = (byte) 0x81;
    public static final byte TAG_RSA_EXPONENT = (byte) 0x82;
    public static final byte EC_POINT_UNCOMPRESSED = (byte) 0x04;
    public static final byte TAG_PIN = (byte) 0x03;
    public static final byte TAG_PUK = (byte) 0x04;

    // ---- Signed device key message ("SCDK" || version || ...) ---------------------------
    public static final short SIGNED_DEVICE_KEY_MAGIC_HIGH = (short) 0x5343;
    public static final short SIGNED_DEVICE_KEY_MAGIC_LOW = (short) 0x444B;
    public static final byte SIGNED_DEVICE_KEY_FORMAT_VERSION = (byte) 0x01;

    // ---- Sealed blob (docs/sealed-blob.md) ------------------------------------------------
    public static final byte BLOB_FORMAT_VERSION = (byte) 0x01;
    public static final byte PT_USER_KEY = (byte) 0x01;
    public static final byte PT_DEVICE_AUTH_KEY = (byte) 0x02;
    public static final byte PT_PIN = (byte) 0x03;
    public static final byte PT_PUK = (byte) 0x04;

    // ---- Signed messages of INTERNAL AUTHENTICATE ("SCIA") and ISSUER COMMAND ("SCIC") --
    public static final short INTERNAL_AUTH_MAGIC_HIGH = (short) 0x5343;
    public static final short INTERNAL_AUTH_MAGIC_LOW = (short) 0x4941;
    public static final short ISSUER_COMMAND_MAGIC_HIGH = (short) 0x5343;
    public static final short ISSUER_COMMAND_MAGIC_LOW = (short) 0x4943;

    // ---- GET DATA objects (P1P2) -------------------------------------------------------
    public static final short DO_SERIAL = (short) 0x0101;
    public static final short DO_STATUS = (short) 0x0102;
    public static final short DO_PLATFORM = (short) 0x0103;
    public static final short DO_DEVICE_PUBLIC_KEY = (short) 0x0110;
    public static final short DO_ISSUER_AUTH_PUBLIC_KEY = (short) 0x0111;
    public static final short DO_ISSUER_PUBLIC_KEY = (short) 0x0112;
    public static final short DO_DEVICE_KEY_CERT = (short) 0x0120;
    public static final short DO_ISSUER_AUTH_KEY_CERT = (short) 0x0121;
    public static final short DO_SIGNED_DEVICE_KEY = (short) 0x0122;
    public static final short DO_USER_PUBLIC_KEY = (short) 0x0130;
    public static final short DO_PIN_STATUS = (short) 0x0131;

    // ---- Life-cycle states -------------------------------------------------------------
    public static final byte STATE_BLANK = (byte) 0x01;
    public static final byte STATE_INITIALIZED = (byte) 0x03;
    public static final byte STATE_PERSONALIZED = (byte) 0x07;
    public static final byte STATE_TERMINATED = (byte) 0x0F;

    // ---- Capability bits ---------------------------------------------------------------
    public static final short CAP_TRNG = (short) 0x0001;
    public static final short CAP_RSA_OAEP_SHA256 = (short) 0x0002;
    public static final short CAP_ECDSA_PRECOMPUTED = (short) 0x0004;
    public static final short CAP_EXTENDED_LENGTH = (short) 0x0008;
    public static final short CAP_SECP256K1 = (short) 0x0010;
    public static final short CAP_EC_PLAIN_XY = (short) 0x0020;

    // ---- Status words ------------------------------------------------------------------
    public static final short SW_OK = (short) 0x9000;
    public static final short SW_BYTES_REMAINING = (short) 0x6100;
    public static final short SW_WRONG_LENGTH = (short) 0x6700;
    public static final short SW_LAST_COMMAND_OF_CHAIN_EXPECTED = (short) 0x6883;
    public static final short SW_CHAINING_NOT_SUPPORTED = (short) 0x6884;
    public static final short SW_PIN_TRIES_REMAINING = (short) 0x63C0;
    public static final short SW_AUTH_METHOD_BLOCKED = (short) 0x6983;
    public static final short SW_DATA_INVALID = (short) 0x6984;
    public static final short SW_SECURITY_STATUS_NOT_SATISFIED = (short) 0x6982;
    public static final short SW_CONDITIONS_NOT_SATISFIED = (short) 0x6985;
    public static final short SW_WRONG_DATA = (short) 0x6A80;
    public static final short SW_NOT_ENOUGH_MEMORY = (short) 0x6A84;
    public static final short SW_FILE_NOT_FOUND = (short) 0x6A82;
    public static final short SW_INCORRECT_P1P2 = (short) 0x6A86;
    public static final short SW_REFERENCED_DATA_NOT_FOUND = (short) 0x6A88;
    public static final short SW_INS_NOT_SUPPORTED = (short) 0x6D00;
    public static final short SW_CLA_NOT_SUPPORTED = (short) 0x6E00;
    public static final short SW_UNKNOWN = (short) 0x6F00;
}
