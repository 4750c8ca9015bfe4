package sealcard.simulator;

import java.util.Locale;
import java.util.Random;

/**
 * How long a command takes on a real chip, so that a simulated card answers no sooner than that
 * card would. {@code none}: as fast as jCardSim. {@code jcop4}: NXP JCOP 4 J3R180, from the
 * per-operation timings JCAlgTest published for it (github.com/crocs-muni/jcalgtest_results,
 * javacard/Profiles/performance/fixed/NXP_JCOP4_J3R180_SECID_P71____PERFORMANCE_SYMMETRIC_
 * ASYMMETRIC_DATAFIXED_1634708420109__3b_d5_18_ff_81_91_fe_1f_c3_80_73_c8_21_10_0a.csv and the
 * DATADEPEND file of the same card, measured 2021-10-20 with AlgTest 1.8.0, "avg op" in ms with
 * the APDU baseline removed). What each command costs, operation by operation, is listed in
 * docs/performance.md ("The card timing model"); the constants below are those sums.
 *
 * <p>A command's time is the card's work (by INS, by the status word it answered: a refusal
 * stops early) plus the contact link: {@link #LINK_MS_PER_APDU} per APDU and
 * {@link #LINK_MS_PER_BYTE} per byte each way (T=1 at about 125 kbit/s: the J3R180's ATR asks
 * for Fi=372, Di=12). RSA-2048 key generation varies the way it does on the card (a search for
 * primes): drawn per card from a seeded generator, mean and range as JCAlgTest measured them.
 */
final class CardTiming {
    static final String NONE = "none";
    static final String JCOP4 = "jcop4";
    static final String NAMES = NONE + ", " + JCOP4;

    // ---- link (assumed: T=1, 125 kbit/s, 10 bits per byte; reader and block overhead)
    static final double LINK_MS_PER_APDU = 1.0;
    static final double LINK_MS_PER_BYTE = 0.08;

    // ---- JCAlgTest, NXP JCOP4 J3R180, 2021-10-20 (ms per operation)
    private static final double ECDSA_INIT = 8.12;
    private static final double ECDSA_SIGN_P256 = 31.96;
    private static final double ECDSA_VERIFY_P256 = 30.22;
    private static final double RSA_CRT_INIT = 6.10;
    private static final double RSA_CRT_NOPAD_2048 = 53.23;
    private static final double SHA256_36_BYTES = 2.60;
    private static final double SHA256_227_BYTES = 7.20;
    private static final double SHA256_EMPTY = 2.23;
    private static final double ECDH_P256_SECRET = 20.04;
    private static final double ECDH_INIT = 7.90;
    private static final double EC_SET_KEY = 3.40;
    private static final double EC_P256_KEYGEN = 26.80;
    private static final double RANDOM_8 = 1.18;
    private static final double EEPROM_MS_PER_BYTE = 2.81 / 256.0;
    private static final double RSA_KEYGEN_MIN = 595.5;
    private static final double RSA_KEYGEN_MEAN = 5224.7;
    private static final double RSA_KEYGEN_MAX = 17319.5;

    // ---- assumed (no JCAlgTest figure): applet dispatch, one transaction, a PIN check
    private static final double DISPATCH = 1.0;
    private static final double TRANSACTION = 5.0;
    private static final double PIN_CHECK = 5.0;

    private static final double OAEP_HASHING = SHA256_EMPTY + SHA256_227_BYTES
            + 7 * SHA256_36_BYTES;
    /** ECDSA P-256 verify of the issuer signature (the object is initialised per command). */
    static final double PERSONALIZE_SIGNATURE = DISPATCH + ECDSA_INIT + ECDSA_VERIFY_P256;
    /** + RSA-2048 CRT, the applet's OAEP decoding, the P-256 point check (all always run). */
    static final double PERSONALIZE_DECRYPTION = PERSONALIZE_SIGNATURE + RSA_CRT_INIT
            + RSA_CRT_NOPAD_2048 + OAEP_HASHING + ECDH_P256_SECRET;
    /** + storing both keys, d*G (DH_PLAIN_XY) for the user public key, the final transaction. */
    static final double PERSONALIZE_SUCCESS = PERSONALIZE_DECRYPTION + 2 * EC_SET_KEY
            + ECDH_INIT + ECDH_P256_SECRET + TRANSACTION;

    private static final int SW_OK = 0x9000;
    private static final int SW_SECURITY = 0x6982;
    private static final int SW_BLOB_INVALID = 0x6984;
    private static final int SW_MORE_DATA = 0x6100;
    private static final int SW1_ONLY = 0xFF00;
    private static final int SW_WRONG_PIN = 0x63C0;
    private static final int SW1_MASK = 0xFFF0;
    private static final int BYTE_MASK = 0xFF;
    private static final int CHAINING_BIT = 0x10;
    private static final int HEADER_LENGTH = 4;
    private static final byte KEY_DEVICE = 0x01;
    private static final long NANOS_PER_MS = 1_000_000L;
    private static final long SEED = 0x5EA1CA4DL;

    private final String name;
    private final Random keygen;

    private CardTiming(String name, int cardIndex) {
        this.name = name;
        this.keygen = new Random(SEED + cardIndex);
    }

    /** The model called {@code name} ({@link #NAMES}) for card {@code cardIndex}. */
    static CardTiming named(String name, int cardIndex) {
        String lower = name.toLowerCase(Locale.ROOT);
        if (!NONE.equals(lower) && !JCOP4.equals(lower)) {
            throw new IllegalArgumentException("unknown timing " + name + " (one of " + NAMES + ")");
        }
        return new CardTiming(lower, cardIndex);
    }

    String name() {
        return name;
    }

    boolean enabled() {
        return !NONE.equals(name);
    }

    /** How long {@code command} answered by {@code response} takes on the chip, link included. */
    long nanos(byte[] command, byte[] response) {
        if (!enabled() || command.length < HEADER_LENGTH || response.length < 2) {
            return 0;
        }
        int sw = ((response[response.length - 2] & BYTE_MASK) << 8)
                | (response[response.length - 1] & BYTE_MASK);
        double ms = LINK_MS_PER_APDU + LINK_MS_PER_BYTE * (command.length + response.length)
                + cardMs(command, sw);
        return (long) (ms * NANOS_PER_MS);
    }

    private double cardMs(byte[] command, int sw) {
        boolean chunk = (command[0] & CHAINING_BIT) != 0;
        double staging = EEPROM_MS_PER_BYTE * Math.max(0, command.length - HEADER_LENGTH - 1);
        byte ins = command[1];
        boolean done = sw == SW_OK || (sw & SW1_ONLY) == SW_MORE_DATA;  // 61xx: done, answer waits
        if (!done && !workedBeforeRefusing(ins, sw)) {
            return DISPATCH;  // refused before any cryptography (state, length, format)
        }
        switch (ins) {
            case (byte) 0x50:  // PERSONALIZE: the chunks land in EEPROM, the last one works
                if (chunk) {
                    return DISPATCH + staging;
                }
                if (sw == SW_SECURITY) {
                    return staging + PERSONALIZE_SIGNATURE;
                }
                if (sw == SW_BLOB_INVALID) {
                    return staging + PERSONALIZE_DECRYPTION;
                }
                return staging + PERSONALIZE_SUCCESS;
            case (byte) 0x46:  // GENERATE KEY PAIR
                return DISPATCH + TRANSACTION
                        + (command[2] == KEY_DEVICE ? rsaKeyGeneration() : EC_P256_KEYGEN);
            case (byte) 0x36:  // SIGN DEVICE KEY: ECDSA P-256 over the RSA public key, stored
                return DISPATCH + ECDSA_INIT + ECDSA_SIGN_P256 + TRANSACTION;
            case (byte) 0x32:  // PUT ISSUER KEY: point check, then the spare key and a switch
                return DISPATCH + ECDH_P256_SECRET + EC_SET_KEY + TRANSACTION;
            case (byte) 0x34:  // PUT CERTIFICATE: chunks into the spare buffer, then a switch
                return DISPATCH + staging + (chunk ? 0 : TRANSACTION);
            case (byte) 0x30:  // SET SERIAL (given or drawn)
                return DISPATCH + RANDOM_8 + TRANSACTION;
            case (byte) 0x3E:  // CLOSE INITIALIZATION
            case (byte) 0x38:  // PUT PIN PUK
                return DISPATCH + TRANSACTION;
            case (byte) 0x20:  // VERIFY
                return DISPATCH + PIN_CHECK;
            case (byte) 0x24:  // CHANGE REFERENCE DATA
            case (byte) 0x2C:  // RESET RETRY COUNTER
                return DISPATCH + PIN_CHECK + TRANSACTION;
            case (byte) 0x2A:  // SIGN HASH: secp256k1 signPreComputedHash, low-S in the applet
                return DISPATCH + ECDSA_INIT + ECDSA_SIGN_P256 + DISPATCH;
            case (byte) 0x88:  // INTERNAL AUTHENTICATE
                return DISPATCH + ECDSA_INIT + ECDSA_SIGN_P256;
            case (byte) 0x60:  // ISSUER COMMAND: verify, then the action
                return DISPATCH + ECDSA_INIT + ECDSA_VERIFY_P256 + (done ? TRANSACTION : 0);
            case (byte) 0x84:  // GET CHALLENGE
                return DISPATCH + RANDOM_8;
            default:           // SELECT, GET DATA, GET RESPONSE
                return DISPATCH;
        }
    }

    /** Refusals that come after the expensive part: a signature or a PIN was checked. */
    private static boolean workedBeforeRefusing(byte ins, int sw) {
        switch (ins) {
            case (byte) 0x50:
                return sw == SW_SECURITY || sw == SW_BLOB_INVALID;
            case (byte) 0x60:
                return sw == SW_SECURITY;
            case (byte) 0x20:
            case (byte) 0x24:
            case (byte) 0x2C:
                return (sw & SW1_MASK) == SW_WRONG_PIN;
            default:
                return false;
        }
    }

    /** A draw of RSA-2048 CRT key generation time: shifted exponential, clipped to the range. */
    private double rsaKeyGeneration() {
        double draw = RSA_KEYGEN_MIN - (RSA_KEYGEN_MEAN - RSA_KEYGEN_MIN)
                * Math.log(1.0 - keygen.nextDouble());
        return Math.min(draw, RSA_KEYGEN_MAX);
    }

    /**
     * {@code CardTiming MODEL COMMAND_HEX RESPONSE_HEX}: prints the modelled milliseconds of one
     * exchange on card 0 (how docs/performance.md's table and the tests read the model).
     */
    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: CardTiming MODEL COMMAND_HEX RESPONSE_HEX  (MODEL: "
                    + NAMES + ")");
            System.exit(2);
        }
        CardTiming timing = named(args[0], 0);
        long nanos = timing.nanos(Hex.decode(args[1]), Hex.decode(args[2]));
        System.out.println(String.format(Locale.ROOT, "%.2f", nanos / (double) NANOS_PER_MS));
    }
}
