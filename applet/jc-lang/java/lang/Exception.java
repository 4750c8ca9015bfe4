/*
 * Part of the minimal java.lang of the JavaCard 3.0.4 classic platform, written for
 * compile-time checking only (see applet/README.md). It is never loaded at run time:
 * the simulator runs on the JDK's java.lang, a real card on its own.
 */
package java.lang;

/** JavaCard 3.0.4 classic: {@code java.lang.Exception}. */
public class Exception extends Throwable {
    /** Constructs an instance. */
    public Exception() {
        super();
    }
}
