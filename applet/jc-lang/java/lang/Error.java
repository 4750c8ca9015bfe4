/*
 * NOT part of the JavaCard 3.0.4 java.lang package. javac itself needs java.lang.Error to
 * tell checked from unchecked exceptions, so this stub exists at compile time only;
 * tools/check_javacard_subset.py rejects any applet class that refers to it.
 */
package java.lang;

/** Compile-time stub required by javac; not available on a JavaCard. */
public class Error extends Throwable {
    /** Constructs an instance. */
    public Error() {
        super();
    }
}
