package jobs.deploy;

import java.util.List;
import java.util.Locale;

/** Checks a standard 5-field cron schedule (minute hour day-of-month month day-of-week), as cron and Kubernetes read it. */
final class CronExpression {

    private static final int[][] RANGES = {{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}};
    private static final List<String> MONTHS = List.of("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC");
    private static final List<String> DAYS = List.of("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT");

    private CronExpression() {
    }

    /** Why {@code schedule} is not a valid 5-field cron expression, or null when it is. */
    static String problem(String schedule) {
        String[] fields = schedule.strip().split("\\s+");
        if (fields.length != 5) {
            return "'" + schedule + "' has " + fields.length + " fields, not 5";
        }
        for (int f = 0; f < 5; f++) {
            for (String item : fields[f].split(",", -1)) {
                if (!validItem(item, f)) {
                    return "'" + schedule + "': field " + (f + 1) + " item '" + item + "' is not valid";
                }
            }
        }
        return null;
    }

    private static boolean validItem(String item, int field) {
        String base = item;
        int slash = item.indexOf('/');
        if (slash >= 0) {
            base = item.substring(0, slash);
            Integer step = number(item.substring(slash + 1));
            if (step == null || step < 1) {
                return false;
            }
        }
        if (base.equals("*")) {
            return true;
        }
        int dash = base.indexOf('-');
        if (dash < 0) {
            return value(base, field) != null;
        }
        Integer lo = value(base.substring(0, dash), field);
        Integer hi = value(base.substring(dash + 1), field);
        return lo != null && hi != null && lo <= hi;
    }

    private static Integer value(String text, int field) {
        Integer v = number(text);
        if (v == null) {
            String name = text.toUpperCase(Locale.ROOT);
            if (field == 3 && MONTHS.contains(name)) {
                v = MONTHS.indexOf(name) + 1;
            } else if (field == 4 && DAYS.contains(name)) {
                v = DAYS.indexOf(name);
            }
        }
        return v != null && v >= RANGES[field][0] && v <= RANGES[field][1] ? v : null;
    }

    private static Integer number(String text) {
        return text.matches("\\d{1,2}") ? Integer.valueOf(text) : null;
    }
}
