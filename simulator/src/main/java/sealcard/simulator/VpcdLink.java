package sealcard.simulator;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;

import jdk.net.ExtendedSocketOptions;

/**
 * One card's connection to vpcd, the virtual reader driver inside pcscd.
 *
 * vpcd listens; the card connects as a TCP client. Every message is a 2-byte big-endian length
 * and a payload. A 1-byte payload from vpcd is a control code (power off, power on, reset: no
 * answer; get ATR: answered with the ATR); a longer one is a command APDU, answered with the
 * response APDU. When the connection drops (pcscd restarts, a tear), the link reconnects.
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
        DataInputStream in = new DataInputStream(new BufferedInputStream(s.getInputStream()));
        OutputStream out = s.getOutputStream();
        while (running) {
            int length = in.readUnsignedShort();
            quickAck(s);
            byte[] payload = new byte[length];
            in.readFully(payload);
            quickAck(s);
            if (length == CONTROL_LENGTH) {
                control(payload[0] & BYTE_MASK, out);
            } else if (length > CONTROL_LENGTH) {
                send(out, card.transmit(payload));
            }
        }
    }

    private void control(int code, OutputStream out) throws IOException {
        switch (code) {
            case CTRL_OFF:
                card.powerOff();
                break;
            case CTRL_ON:
                card.powerOn();
                break;
            case CTRL_RESET:
                card.warmReset();
                break;
            case CTRL_ATR:
                send(out, card.atr());
                break;
            default:
                Log.info("card " + card.index + ": ignoring unknown vpcd control code " + code);
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
