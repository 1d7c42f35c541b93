package analysis.seek;

import activations.hooks.ForwardRequest;
import activations.hooks.HookPoint;
import activations.model.TransformerModel;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import training.evaluation.DictionaryEvaluator;
import training.evaluation.FeatureDictionary;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Evolutionary search for token sequences that drive one dictionary feature. A sequence's
 * fitness is the feature's largest activation over its positions (a leading BOS excluded, it is
 * the same in every sequence); each evaluated sequence is cut after that position, so an
 * individual's fitness is the activation at its last token. Each generation keeps the best
 * {@code elite} individuals and fills the rest with children of tournament-selected parents:
 * one-point crossover (a prefix of one parent joined to a suffix of the other), then one to three
 * mutations (replace, insert or delete a token). The initial population holds the seeds (e.g.
 * the cached top examples' contexts) and random sequences. Deterministic for a given seed.
 */
public final class FeatureSeeker {

    /** Search settings; {@code bosId} is -1 for sequences without BOS. */
    public record Settings(int population, int generations, int maxLength, long seed, int bosId) {
        public Settings {
            if (population < 2) {
                throw new IllegalArgumentException("--population must be at least 2, got " + population);
            }
            if (generations < 1) {
                throw new IllegalArgumentException("--generations must be at least 1, got " + generations);
            }
            if (maxLength < 2) {
                throw new IllegalArgumentException("--max-length must be at least 2, got " + maxLength);
            }
        }
    }

    /** A scored sequence (BOS included when used); {@code activation} is the feature's value at its last token. */
    public record Candidate(int[] tokens, float activation) {
    }

    /** Per generation the best and mean fitness of the population, and the best sequences ever evaluated. */
    public record Result(List<Candidate> best, double[] bestByGeneration, double[] meanByGeneration, Candidate bestSeed,
                         long evaluated) {
    }

    private final TransformerModel model;
    private final FeatureDictionary dictionary;
    private final HookPoint hook;
    private final int feature;
    private final int[] vocabulary;
    private final Map<List<Integer>, Candidate> scored = new HashMap<>();

    /** {@code vocabulary}: the token ids mutations draw from (the tokenizer's non-special tokens). */
    public FeatureSeeker(TransformerModel model, FeatureDictionary dictionary, int feature, int[] vocabulary) {
        this.model = model;
        this.dictionary = dictionary;
        this.hook = DictionaryEvaluator.hook(dictionary.hookName(), dictionary.dIn(), model, "input");
        if (feature < 0 || feature >= dictionary.dSae()) {
            throw new IllegalArgumentException("feature " + feature + " is out of range: the dictionary has features 0.."
                    + (dictionary.dSae() - 1));
        }
        if (vocabulary.length == 0) {
            throw new IllegalArgumentException("no tokens to search over");
        }
        this.feature = feature;
        this.vocabulary = vocabulary.clone();
    }

    /**
     * The feature's activation at every position of each sequence ([sequence][position]); sequences
     * of equal length run as one batch.
     */
    public float[][] activations(List<int[]> sequences) {
        float[][] out = new float[sequences.size()][];
        Map<Integer, List<Integer>> byLength = new LinkedHashMap<>();
        for (int i = 0; i < sequences.size(); i++) {
            byLength.computeIfAbsent(sequences.get(i).length, k -> new ArrayList<>()).add(i);
        }
        for (Map.Entry<Integer, List<Integer>> group : byLength.entrySet()) {
            int seqLen = group.getKey();
            int[][] batch = group.getValue().stream().map(sequences::get).toArray(int[][]::new);
            float[] x = model.forward(batch, ForwardRequest.capture(hook)).get(hook);
            INDArray f = dictionary.encode(Nd4j.createFromArray(x).reshape((long) batch.length * seqLen, dictionary.dIn()))
                    .getColumn(feature).dup();
            float[] values = f.toFloatVector();
            for (int b = 0; b < batch.length; b++) {
                out[group.getValue().get(b)] = Arrays.copyOfRange(values, b * seqLen, (b + 1) * seqLen);
            }
        }
        return out;
    }

    /** Scores sequences: each cut after its best position (BOS excluded), with the activation there. */
    List<Candidate> score(List<int[]> sequences, int bosId) {
        List<int[]> fresh = new ArrayList<>();
        for (int[] s : sequences) {
            if (!scored.containsKey(key(s))) {
                fresh.add(s);
            }
        }
        Map<List<Integer>, int[]> distinct = new LinkedHashMap<>();
        for (int[] s : fresh) {
            distinct.putIfAbsent(key(s), s);
        }
        List<int[]> unique = new ArrayList<>(distinct.values());
        float[][] acts = unique.isEmpty() ? new float[0][] : activations(unique);
        for (int i = 0; i < unique.size(); i++) {
            int[] s = unique.get(i);
            int from = bosId >= 0 && s[0] == bosId && s.length > 1 ? 1 : 0;
            int best = from;
            for (int t = from; t < s.length; t++) {
                if (acts[i][t] > acts[i][best]) {
                    best = t;
                }
            }
            scored.put(key(s), new Candidate(Arrays.copyOf(s, best + 1), acts[i][best]));
        }
        List<Candidate> out = new ArrayList<>();
        for (int[] s : sequences) {
            out.add(scored.get(key(s)));
        }
        return out;
    }

    private static List<Integer> key(int[] s) {
        return Arrays.stream(s).boxed().toList();
    }

    /** Orders by activation (highest first), then by tokens, so ties do not depend on arrival order. */
    static final Comparator<Candidate> BEST_FIRST = Comparator.comparingDouble((Candidate c) -> -c.activation())
            .thenComparing(Candidate::tokens, Arrays::compare);

    public Result search(Settings settings, List<int[]> seeds, int keep) {
        SplittableRandom random = new SplittableRandom(settings.seed());
        int bos = settings.bosId();
        int prefix = bos >= 0 ? 1 : 0;
        List<int[]> initial = new ArrayList<>();
        for (int[] s : seeds) {
            int[] body = bos >= 0 && s.length > 0 && s[0] == bos ? Arrays.copyOfRange(s, 1, s.length) : s;
            // Keep the end of a long seed: the cached top token is its last one.
            int n = Math.min(body.length, settings.maxLength() - prefix);
            if (n > 0) {
                initial.add(withPrefix(Arrays.copyOfRange(body, body.length - n, body.length), bos));
            }
        }
        Candidate bestSeed = initial.isEmpty() ? null : score(initial, bos).stream().min(BEST_FIRST).orElseThrow();
        while (initial.size() < settings.population()) {
            int n = 1 + random.nextInt(settings.maxLength() - prefix);
            int[] body = new int[n];
            for (int i = 0; i < n; i++) {
                body[i] = vocabulary[random.nextInt(vocabulary.length)];
            }
            initial.add(withPrefix(body, bos));
        }
        // More seeds than room: the best seeds make up the population.
        List<Candidate> population = new ArrayList<>(score(initial, bos));
        population.sort(BEST_FIRST);
        population = new ArrayList<>(population.subList(0, settings.population()));
        int elite = Math.max(1, settings.population() / 16);
        double[] bestCurve = new double[settings.generations() + 1];
        double[] meanCurve = new double[settings.generations() + 1];
        record(population, bestCurve, meanCurve, 0);
        for (int g = 1; g <= settings.generations(); g++) {
            population.sort(BEST_FIRST);
            List<int[]> children = new ArrayList<>();
            for (int i = 0; i < settings.population() - elite; i++) {
                int[] a = body(tournament(population, random).tokens(), bos);
                int[] child = a;
                if (random.nextBoolean()) {
                    int[] b = body(tournament(population, random).tokens(), bos);
                    int cutA = random.nextInt(a.length + 1);
                    int cutB = random.nextInt(b.length + 1);
                    child = concat(Arrays.copyOf(a, cutA), Arrays.copyOfRange(b, cutB, b.length));
                }
                int mutations = 1 + random.nextInt(3);
                for (int m = 0; m < mutations; m++) {
                    child = mutate(child, random, settings.maxLength() - prefix);
                }
                if (child.length == 0) {
                    child = new int[]{vocabulary[random.nextInt(vocabulary.length)]};
                }
                if (child.length > settings.maxLength() - prefix) {
                    child = Arrays.copyOfRange(child, child.length - (settings.maxLength() - prefix), child.length);
                }
                children.add(withPrefix(child, bos));
            }
            List<Candidate> next = new ArrayList<>(population.subList(0, elite));
            next.addAll(score(children, bos));
            population = next;
            record(population, bestCurve, meanCurve, g);
        }
        Map<List<Integer>, Candidate> distinctBest = new HashMap<>();
        for (Candidate c : scored.values()) {
            distinctBest.putIfAbsent(key(c.tokens()), c);
        }
        List<Candidate> all = new ArrayList<>(distinctBest.values());
        all.sort(BEST_FIRST);
        return new Result(all.subList(0, Math.min(keep, all.size())), bestCurve, meanCurve, bestSeed, scored.size());
    }

    private static void record(List<Candidate> population, double[] best, double[] mean, int g) {
        double max = Double.NEGATIVE_INFINITY;
        double sum = 0;
        for (Candidate c : population) {
            max = Math.max(max, c.activation());
            sum += c.activation();
        }
        best[g] = max;
        mean[g] = sum / population.size();
    }

    private static Candidate tournament(List<Candidate> population, SplittableRandom random) {
        Candidate best = null;
        for (int i = 0; i < 3; i++) {
            Candidate c = population.get(random.nextInt(population.size()));
            if (best == null || BEST_FIRST.compare(c, best) < 0) {
                best = c;
            }
        }
        return best;
    }

    private int[] mutate(int[] s, SplittableRandom random, int maxBody) {
        int op = random.nextInt(3);
        int token = vocabulary[random.nextInt(vocabulary.length)];
        if (op == 0 && s.length > 0) {
            int[] r = s.clone();
            r[random.nextInt(s.length)] = token;
            return r;
        }
        if (op == 1 && s.length < maxBody) {
            int at = random.nextInt(s.length + 1);
            int[] r = new int[s.length + 1];
            System.arraycopy(s, 0, r, 0, at);
            r[at] = token;
            System.arraycopy(s, at, r, at + 1, s.length - at);
            return r;
        }
        if (s.length > 1) {
            int at = random.nextInt(s.length);
            int[] r = new int[s.length - 1];
            System.arraycopy(s, 0, r, 0, at);
            System.arraycopy(s, at + 1, r, at, s.length - at - 1);
            return r;
        }
        return s;
    }

    private static int[] body(int[] tokens, int bos) {
        return bos >= 0 && tokens.length > 0 && tokens[0] == bos ? Arrays.copyOfRange(tokens, 1, tokens.length) : tokens;
    }

    private static int[] withPrefix(int[] body, int bos) {
        if (bos < 0) {
            return body;
        }
        int[] r = new int[body.length + 1];
        r[0] = bos;
        System.arraycopy(body, 0, r, 1, body.length);
        return r;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
