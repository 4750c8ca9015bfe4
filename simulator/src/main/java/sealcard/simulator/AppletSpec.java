package sealcard.simulator;

import java.io.ByteArrayOutputStream;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Path;
import java.util.List;

import javacard.framework.Applet;

/** What gets installed on every card: the applet class, its AID and its install parameters. */
final class AppletSpec {
    final String className;
    final byte[] appletAid;
    final byte[] packageAid;
    final byte[] installParams;
    private final ClassLoader source;

    AppletSpec(String className, byte[] appletAid, byte[] packageAid, byte[] installParams,
            List<Path> extraClasspath) {
        this.className = className;
        this.appletAid = appletAid.clone();
        this.packageAid = packageAid.clone();
        this.installParams = installParams.clone();
        this.source = sourceLoader(extraClasspath);
    }

    private static ClassLoader sourceLoader(List<Path> extraClasspath) {
        ClassLoader base = AppletSpec.class.getClassLoader();
        if (extraClasspath.isEmpty()) {
            return base;
        }
        URL[] urls = new URL[extraClasspath.size()];
        for (int i = 0; i < urls.length; i++) {
            try {
                urls[i] = extraClasspath.get(i).toUri().toURL();
            } catch (MalformedURLException e) {
                throw new IllegalArgumentException(
                        "bad applet classpath entry " + extraClasspath.get(i), e);
            }
        }
        return new URLClassLoader(urls, base);
    }

    /** The applet class as loaded for one card: a fresh copy of its package's statics. */
    Class<? extends Applet> loadForOneCard() throws ClassNotFoundException {
        int dot = className.lastIndexOf('.');
        ClassLoader loader = dot < 0
                ? source
                : new AppletClassLoader(source, className.substring(0, dot));
        Class<?> cls = Class.forName(className, true, loader);
        if (!Applet.class.isAssignableFrom(cls)) {
            throw new ClassNotFoundException(
                    className + " does not extend javacard.framework.Applet");
        }
        return cls.asSubclass(Applet.class);
    }

    /**
     * The install parameters a card manager hands to {@code Applet.install}, as GlobalPlatform's
     * INSTALL [for install] builds them: instance AID, empty control info, application parameters.
     */
    byte[] installArray() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(appletAid.length);
        out.write(appletAid, 0, appletAid.length);
        out.write(0);
        out.write(installParams.length);
        out.write(installParams, 0, installParams.length);
        return out.toByteArray();
    }
}
