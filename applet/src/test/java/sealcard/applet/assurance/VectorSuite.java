package sealcard.applet.assurance;

final class VectorSuite {
    Report run() throws Exception {
        return new Report("todo");
    }
}
