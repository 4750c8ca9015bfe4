package sealcard.simulator;

import java.io.IOException;
import java.io.InputStream;

/**
 * Loads the applet's package afresh for one card (child first), everything else from the parent.
 *
 * A real card has its own copy of every static field of the applet's package; several cards in
 * one JVM would otherwise share them. The JavaCard API and jCardSim come from the parent, so the
 * applet still extends the one {@code javacard.framework.Applet} that jCardSim knows.
 */
final class AppletClassLoader extends ClassLoader {
    private final String packagePrefix;

    AppletClassLoader(ClassLoader parent, String packageName) {
        super(parent);
        this.packagePrefix = packageName + ".";
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        if (!name.startsWith(packagePrefix)) {
            return super.loadClass(name, resolve);
        }
        synchronized (getClassLoadingLock(name)) {
            Class<?> loaded = findLoadedClass(name);
            if (loaded == null) {
                loaded = findClass(name);
            }
            if (resolve) {
                resolveClass(loaded);
            }
            return loaded;
        }
    }

    @Override
    protected Class<?> findClass(String name) throws ClassNotFoundException {
        String resource = name.replace('.', '/') + ".class";
        try (InputStream in = getParent().getResourceAsStream(resource)) {
            if (in == null) {
                throw new ClassNotFoundException(name);
            }
            byte[] code = in.readAllBytes();
            return defineClass(name, code, 0, code.length);
        } catch (IOException e) {
            throw new ClassNotFoundException(name, e);
        }
    }
}
