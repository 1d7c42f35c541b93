package analysis.probe;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Probes for one labelled data set and several hooks: per hook an L2-regularised multinomial
 * logistic regression and, for binary labels, the difference-of-means direction. The split is
 * fixed: examples whose 0-based line index is divisible by 5 are held out, the rest train.
 */
public final class LinearProbes {

    /** One hook's probes and their accuracies; {@code differenceOfMeans} is null unless the labels are binary. */
    public record HookProbe(String hook, LogisticRegression.Fit regression, double trainAccuracy, double heldoutAccuracy,
                            DifferenceOfMeans differenceOfMeans, double meansTrainAccuracy, double meansHeldoutAccuracy) {
    }

    public record Result(List<String> classes, int trainExamples, int heldoutExamples, List<HookProbe> probes) {
    }

    private LinearProbes() {
    }

    public static boolean heldOut(long lineIndex) {
        return lineIndex % 5 == 0;
    }

    /**
     * Class names in order: numerically when every label is a number, else as strings; the class
     * index of a label is its position here.
     */
    public static List<String> classes(List<String> labels) {
        boolean numeric = labels.stream().allMatch(LinearProbes::isNumber);
        Comparator<String> order = numeric
                ? Comparator.<String>comparingDouble(Double::parseDouble).thenComparing(Comparator.naturalOrder())
                : Comparator.naturalOrder();
        TreeSet<String> set = new TreeSet<>(order);
        set.addAll(labels);
        return new ArrayList<>(set);
    }

    private static boolean isNumber(String s) {
        try {
            Double.parseDouble(s);
            return true;
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /**
     * Fits every hook's probes. {@code features[h][i]} is example i's pooled vector at hook h;
     * {@code lineIndex[i]} decides its split.
     */
    public static Result fit(List<String> hooks, long[] lineIndex, List<String> labels, float[][][] features, double l2,
                             int maxIterations) {
        if (labels.isEmpty()) {
            throw new IllegalArgumentException("the data has no examples; give a JSONL file with one example per line");
        }
        List<String> classes = classes(labels);
        if (classes.size() < 2) {
            throw new IllegalArgumentException("every example has the label '" + classes.get(0)
                    + "'; a probe needs at least two classes");
        }
        Map<String, Integer> index = new LinkedHashMap<>();
        for (String c : classes) {
            index.put(c, index.size());
        }
        int[] y = labels.stream().mapToInt(index::get).toArray();
        List<Integer> train = new ArrayList<>();
        List<Integer> held = new ArrayList<>();
        for (int i = 0; i < y.length; i++) {
            (heldOut(lineIndex[i]) ? held : train).add(i);
        }
        if (train.isEmpty()) {
            throw new IllegalArgumentException("no training examples: every line index is divisible by 5; give at least two examples");
        }
        int[] yTrain = train.stream().mapToInt(i -> y[i]).toArray();
        int[] yHeld = held.stream().mapToInt(i -> y[i]).toArray();
        if (java.util.Arrays.stream(yTrain).distinct().count() < 2) {
            throw new IllegalArgumentException("the training split (line indices not divisible by 5) has only one class; "
                    + "add examples of the other classes");
        }
        List<HookProbe> probes = new ArrayList<>();
        for (int h = 0; h < hooks.size(); h++) {
            float[][] all = features[h];
            float[][] xTrain = train.stream().map(i -> all[i]).toArray(float[][]::new);
            float[][] xHeld = held.stream().map(i -> all[i]).toArray(float[][]::new);
            LogisticRegression.Fit fit = LogisticRegression.fit(xTrain, yTrain, classes.size(), l2, maxIterations, 1e-6);
            DifferenceOfMeans means = classes.size() == 2 ? DifferenceOfMeans.fit(xTrain, yTrain) : null;
            probes.add(new HookProbe(hooks.get(h), fit, fit.accuracy(xTrain, yTrain), fit.accuracy(xHeld, yHeld), means,
                    means == null ? Double.NaN : means.accuracy(xTrain, yTrain),
                    means == null ? Double.NaN : means.accuracy(xHeld, yHeld)));
        }
        return new Result(classes, train.size(), held.size(), probes);
    }
}
