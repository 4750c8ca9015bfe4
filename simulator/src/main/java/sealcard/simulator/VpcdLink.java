package sealcard.simulator;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;

import jdk.net.ExtendedSocketOptions;

/**
 * One card's connection to vpcd, the virtual reader driver inside pcscd.
 *
 * vpcd listens; the card connects as a TCP client. Every message is a 2-byte big-endian length
 * and a payload. A 1-byte payload from vpcd is a control code (power off, power on, reset: no
 * answer; get ATR: answered with the ATR); a longer one is a command APDU, answered with the
 * response APDU. When the connection drops (pcscd restarts, a tear), the link reconnects.
 *
 * A command APDU of one byte reaches us as a 1-byte payload too. vpcd then waits for an answer,
 * holding its lock, so nothing else comes; after a real power off, on or reset something always
 * comes soon (the ATR request that follows on and reset, pcscd's presence poll every 400 ms).
 * So a 1-byte 00, 01 or 02 is held back: when the next message arrives it was a control code
 * and is applied first; when nothing arrives within CONTROL_WAIT_MS it was a command, answered
 * 6700 as a card answers a command shorter than its header. Any other 1-byte value but 04 is
 * a command at once. (04 cannot be told from vpcd's ATR request: docs/simulator.md, Limits.)
 *
 * Latency: Debian's vpcd writes the length and the APDU separately, so with Nagle on its side and
 * delayed ACK on ours every APDU would wait ~40 ms. We set TCP_QUICKACK after every receive (the
 * kernel clears it by itself) so the first segment is acknowledged at once, and TCP_NODELAY on
 * our writes.
 */
final class VpcdLink implements Runnable {
    static final int CTRL_OFF = 0;
    static final int CTRL_ON = 1;
    static final int CTRL_RESET = 2;
    static final int CTRL_ATR = 4;
    private static final int CONTROL_LENGTH = 1;
    private static final int LENGTH_BYTES = 2;
    private static final int BYTE_BITS = 8;
    private static final int BYTE_MASK = 0xFF;
    private static final int CONNECT_TIMEOUT_MS = 1000;
    private static final int NO_CONTROL = -1;
    /** How long a 1-byte 00/01/02 waits for the next message (-Dsealcard.sim.controlWaitMs). */
    private static final int CONTROL_WAIT_MS =
            Integer.getInteger("sealcard.sim.controlWaitMs", 3000);
    private static final long RETRY_MS = 100;
    /** -Dsealcard.sim.quickack=false turns the fix off, to measure the trap (docs/simulator.md). */
    private static final boolean QUICK_ACK =
            !"false".equals(System.getProperty("sealcard.sim.quickack"));

    private final SimulatedCard card;
    private final String host;
    final int port;
    private volatile boolean running = true;
    private volatile boolean connected;
    private volatile Socket socket;
    private volatile long absentUntilMillis;

    VpcdLink(SimulatedCard card, String host, int port) {
        this.card = card;
        this.host = host;
        this.port = port;
    }

    boolean isConnected() {
        return connected;
    }

    @Override
    public void run() {
        boolean announcedWait = false;
        while (running) {
            sleepWhileAbsent();
            Socket s = tryConnect();
            if (s == null) {
                if (!announcedWait) {
                    Log.info("card " + card.index + ": waiting for vpcd on " + host + ":" + port);
                    announcedWait = true;
                }
                pause(RETRY_MS);
                continue;
            }
            announcedWait = false;
            if (System.currentTimeMillis() < absentUntilMillis) {
                closeQuietly(s); // torn while we were connecting: stay out
                continue;
            }
            socket = s;
            connected = true;
            Log.info("card " + card.index + ": inserted (connected to vpcd on port " + port + ")");
            try {
                serve(s);
            } catch (EOFException e) {
                Log.info("card " + card.index + ": vpcd closed the connection");
            } catch (IOException e) {
                if (running) {
                    Log.info("card " + card.index + ": connection lost (" + e.getMessage() + ")");
                }
            } finally {
                connected = false;
                socket = null;
                closeQuietly(s);
                card.powerOff();
            }
        }
    }

    /** Pulls the card: power lost now, out of the reader for absentMillis, then back in. */
    void tear(long absentMillis) {
        absentUntilMillis = System.currentTimeMillis() + absentMillis;
        card.tear();
        Socket s = socket;
        if (s != null) {
            closeQuietly(s);
        }
    }

    void stop() {
        running = false;
        Socket s = socket;
        if (s != null) {
            closeQuietly(s);
        }
    }

    private Socket tryConnect() {
        Socket s = new Socket();
        try {
            s.setTcpNoDelay(true);
            s.connect(new InetSocketAddress(host, port), CONNECT_TIMEOUT_MS);
            quickAck(s);
            return s;
        } catch (IOException e) {
            closeQuietly(s);
            return null;
        }
    }

    private void serve(Socket s) throws IOException {
        BufferedInputStream buffered = new BufferedInputStream(s.getInputStream());
        DataInputStream in = new DataInputStream(buffered);
        OutputStream out = s.getOutputStream();
        int held = NO_CONTROL;
        while (running) {
            if (held != NO_CONTROL && !nextMessageWithin(s, buffered, CONTROL_WAIT_MS)) {
                held = NO_CONTROL; // nothing came: it was a 1-byte command, and vpcd waits
                send(out, CommandApdu.SW_WRONG_LENGTH);
                continue;
            }
            int length = in.readUnsignedShort();
            quickAck(s);
            byte[] payload = new byte[length];
            in.readFully(payload);
            quickAck(s);
            if (held != NO_CONTROL) {
                control(held); // something came: it was vpcd's control code
                held = NO_CONTROL;
            }
            if (length == CONTROL_LENGTH) {
                int code = payload[0] & BYTE_MASK;
                if (code == CTRL_ATR) {
                    send(out, card.atr());
                } else if (code == CTRL_OFF || code == CTRL_ON || code == CTRL_RESET) {
                    held = code;
                } else {
                    send(out, CommandApdu.SW_WRONG_LENGTH); // no such control code: a command
                }
            } else if (length > CONTROL_LENGTH) {
                send(out, card.transmit(payload));
            }
        }
    }

    /** Whether a message starts arriving within `millis` (EOFException when vpcd closed). */
    private static boolean nextMessageWithin(Socket s, BufferedInputStream in, int millis)
            throws IOException {
        s.setSoTimeout(millis);
        try {
            in.mark(1);
            if (in.read() < 0) {
                throw new EOFException();
            }
            in.reset();
            return true;
        } catch (SocketTimeoutException e) {
            return false;
        } finally {
            s.setSoTimeout(0);
        }
    }

    private void control(int code) {
        switch (code) {
            case CTRL_OFF:
                card.powerOff();
                break;
            case CTRL_ON:
                card.powerOn();
                break;
            default:
                card.warmReset();
                break;
        }
    }

    /** Length and payload in one write, so vpcd gets them in one segment. */
    private static void send(OutputStream out, byte[] payload) throws IOException {
        byte[] message = new byte[LENGTH_BYTES + payload.length];
        message[0] = (byte) ((payload.length >>> BYTE_BITS) & BYTE_MASK);
        message[1] = (byte) (payload.length & BYTE_MASK);
        System.arraycopy(payload, 0, message, LENGTH_BYTES, payload.length);
        out.write(message);
        out.flush();
    }

    private static void quickAck(Socket s) {
        if (!QUICK_ACK) {
            return;
        }
        try {
            s.setOption(ExtendedSocketOptions.TCP_QUICKACK, Boolean.TRUE);
        } catch (IOException | UnsupportedOperationException e) {
            // Not Linux: nothing to do, the delayed-ACK trap is Linux-specific.
        }
    }

    private void sleepWhileAbsent() {
        long wait = absentUntilMillis - System.currentTimeMillis();
        while (running && wait > 0) {
            pause(wait);
            wait = absentUntilMillis - System.currentTimeMillis();
        }
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // already closed
        }
    }
}
