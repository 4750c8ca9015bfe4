package sealcard.applet.assurance;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What one suite counted and which checks failed (the first few, with their detail). */
final class Report {

    private static final int SHOWN = 20;

    final String suite;
    final Map<String, Long> counts = new LinkedHashMap<>();
    final List<String> failures = new ArrayList<>();
    long failureCount;
    long checks;

    Report(String suite) {
        this.suite = suite;
    }

    void count(String what, long n) {
        counts.merge(what, n, Long::sum);
    }

    /** One check: passes, or is recorded as a failure with its detail. */
    boolean check(boolean ok, String detail) {
        checks++;
        if (!ok) {
            failureCount++;
            if (failures.size() < SHOWN) {
                failures.add(detail);
            }
        }
        return ok;
    }

    boolean ok() {
        return failureCount == 0;
    }

    void print() {
        StringBuilder line = new StringBuilder("== suite " + suite + ":");
        for (Map.Entry<String, Long> e : counts.entrySet()) {
            line.append(' ').append(e.getKey()).append('=').append(e.getValue());
        }
        line.append(" checks=").append(checks).append(" failed=").append(failureCount);
        System.out.println(line);
        for (String f : failures) {
            System.out.println("   FAIL " + f);
        }
    }
}
