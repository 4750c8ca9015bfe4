package sealcard.applet.assurance;

import java.util.ArrayList;
import java.util.List;

/**
 * Entry point of the adversarial suites (docs/assurance.md): {@code Suites NAME SIZE} with
 * NAME one of fuzz, tear, blobs, side, vectors, all and SIZE ci or full. Prints one line of
 * counts per suite and a closing "N passed, M failed" line; exit status 1 on any failure.
 */
public final class Suites {

    private Suites() {
    }

    public static void main(String[] args) throws Exception {
        String name = args.length > 0 ? args[0] : "all";
        boolean full = args.length > 1 && args[1].equals("full");
        List<Report> reports = new ArrayList<>();
        long start = System.nanoTime();
        if (name.equals("vectors") || name.equals("all")) {
            reports.add(new VectorSuite().run());
        }
        if (name.equals("blobs") || name.equals("all")) {
            reports.add(new BlobSuite(full).run());
        }
        if (name.equals("tear") || name.equals("all")) {
            reports.add(new TearSuite(full).run());
        }
        if (name.equals("side") || name.equals("all")) {
            reports.add(new SideChannelSuite(full).run());
        }
        if (name.equals("fuzz") || name.equals("all")) {
            reports.add(new FuzzSuite(full).run());
        }
        if (reports.isEmpty()) {
            System.err.println("usage: Suites fuzz|tear|blobs|side|vectors|all ci|full");
            System.exit(2);
        }
        int passed = 0;
        int failed = 0;
        for (Report report : reports) {
            report.print();
            if (report.ok()) {
                passed++;
            } else {
                failed++;
            }
        }
        System.out.printf("== %s size, %.1f s%n", full ? "full" : "ci",
                (System.nanoTime() - start) / 1e9);
        System.out.println("suites: " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
