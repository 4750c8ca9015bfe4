package sealcard.applet.assurance;

final class BlobSuite {
    BlobSuite(boolean full) {
    }

    Report run() throws Exception {
        return new Report("todo");
    }
}
