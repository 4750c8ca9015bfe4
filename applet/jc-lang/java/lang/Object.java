/*
 * Part of the minimal java.lang of the JavaCard 3.0.4 classic platform, written for
 * compile-time checking only (see applet/README.md). It is never loaded at run time:
 * the simulator runs on the JDK's java.lang, a real card on its own.
 */
package java.lang;

/** JavaCard 3.0.4 classic: the root of the class hierarchy (only {@code equals}). */
public class Object {
    /** Constructs an object. */
    public Object() {
    }

    /**
     * Reference equality, as on the card.
     *
     * @param obj the other reference
     * @return whether both references name the same object
     */
    public boolean equals(Object obj) {
        return this == obj;
    }
}
