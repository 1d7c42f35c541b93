package analysis.ablation;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;

/**
 * Picks, for each sequence, a donor for resample ablation: another sequence of the same length,
 * uniformly at random with a seed. Sequences are ordered by id first, so the choice depends only
 * on the seed and the set of sequences, not on the order Spark returned them in.
 */
public final class ResampleDonors {

    private ResampleDonors() {
    }

    /** Donor index (into the arguments) for each sequence; -1 when no other sequence has its length. */
    public static int[] assign(long[] ids, int[] lengths, long seed) {
        TreeMap<Integer, List<Integer>> byLength = new TreeMap<>();
        Integer[] order = new Integer[ids.length];
        for (int i = 0; i < ids.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Long.compare(ids[a], ids[b]));
        for (int i : order) {
            byLength.computeIfAbsent(lengths[i], k -> new ArrayList<>()).add(i);
        }
        int[] donors = new int[ids.length];
        Arrays.fill(donors, -1);
        SplittableRandom random = new SplittableRandom(seed);
        for (List<Integer> group : byLength.values()) {
            if (group.size() < 2) {
                continue;
            }
            for (int k = 0; k < group.size(); k++) {
                int j = random.nextInt(group.size() - 1);
                donors[group.get(k)] = group.get(j >= k ? j + 1 : j);
            }
        }
        return donors;
    }
}
