package sealcard.applet.model;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Loads the applet's classes ({@code sealcard.applet.*}, not the test packages below it)
 * from the compiled applet folder, rewritten by {@link Instrumenter}; everything else
 * (jCardSim, the model, the JDK) from the parent.
 */
public final class ModelClassLoader extends ClassLoader {

    private final Path appletClasses;

    public ModelClassLoader(Path appletClasses, ClassLoader parent) {
        super(parent);
        this.appletClasses = appletClasses;
    }

    private static boolean isApplet(String name) {
        return name.startsWith("sealcard.applet.")
                && name.indexOf('.', "sealcard.applet.".length()) < 0;
    }

    @Override
    protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
        if (!isApplet(name)) {
            return super.loadClass(name, resolve);
        }
        synchronized (getClassLoadingLock(name)) {
            Class<?> loaded = findLoadedClass(name);
            if (loaded == null) {
                Path file = appletClasses.resolve(name.replace('.', '/') + ".class");
                try (InputStream in = Files.newInputStream(file)) {
                    byte[] rewritten = Instrumenter.instrument(in.readAllBytes());
                    loaded = defineClass(name, rewritten, 0, rewritten.length);
                } catch (IOException e) {
                    throw new ClassNotFoundException(name, e);
                }
            }
            if (resolve) {
                resolveClass(loaded);
            }
            return loaded;
        }
    }
}
