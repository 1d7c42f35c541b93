package training.sae;

/**
 * In-place quickselect (Hoare partition, median-of-three pivot). Hand-written because neither ND4J
 * nor the JDK offers an allocation-free k-th-largest on a primitive array; the top-k masks of TopK
 * and BatchTopK need one per row or per batch.
 */
final class Selection {

    private Selection() {
    }

    /** The k-th largest (1-based) of {@code a[0..n)}; reorders {@code a}. */
    static double kthLargest(double[] a, int n, int k) {
        if (k < 1 || k > n) {
            throw new IllegalArgumentException("k = " + k + " outside 1.." + n);
        }
        int target = n - k; // index of the k-th largest in ascending order
        int lo = 0;
        int hi = n - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            double pivot = median(a[lo], a[mid], a[hi]);
            int i = lo;
            int j = hi;
            while (i <= j) {
                while (a[i] < pivot) {
                    i++;
                }
                while (a[j] > pivot) {
                    j--;
                }
                if (i <= j) {
                    double t = a[i];
                    a[i] = a[j];
                    a[j] = t;
                    i++;
                    j--;
                }
            }
            if (target <= j) {
                hi = j;
            } else if (target >= i) {
                lo = i;
            } else {
                return a[target];
            }
        }
        return a[target];
    }

    /** Same for float data (BatchTopK selects over the whole batch; a double copy would double its memory). */
    static float kthLargest(float[] a, int n, int k) {
        if (k < 1 || k > n) {
            throw new IllegalArgumentException("k = " + k + " outside 1.." + n);
        }
        int target = n - k;
        int lo = 0;
        int hi = n - 1;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            float pivot = (float) median(a[lo], a[mid], a[hi]);
            int i = lo;
            int j = hi;
            while (i <= j) {
                while (a[i] < pivot) {
                    i++;
                }
                while (a[j] > pivot) {
                    j--;
                }
                if (i <= j) {
                    float t = a[i];
                    a[i] = a[j];
                    a[j] = t;
                    i++;
                    j--;
                }
            }
            if (target <= j) {
                hi = j;
            } else if (target >= i) {
                lo = i;
            } else {
                return a[target];
            }
        }
        return a[target];
    }

    private static double median(double a, double b, double c) {
        return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c));
    }
}
