package training.trainer;

import org.nd4j.linalg.api.ndarray.INDArray;
import training.optim.AdamOptimizer;

/**
 * A dictionary (SAE, transcoder or CLT) with its optimizer and firing statistics, advanced one
 * optimizer step at a time; what the data-parallel driver needs to train any of them. Batches are
 * normalized and come one array per hook, in the activation source's hook order.
 */
public interface DictionaryStep {

    /** One batch's loss parts for metrics; {@code fit} is the FVU (SAE) or the mean NMSE over layers (CLT). */
    record StepLoss(double total, double mse, double sparsity, double auxiliary, double l0, double fit) {
    }

    INDArray parameters();

    INDArray gradients();

    AdamOptimizer adam();

    FeatureStatistics stats();

    double lambdaAt(long step);

    /** Forward and backward; the gradients stay in {@link #gradients()}. */
    StepLoss gradients(INDArray[] batches, long step);

    /** Clips the gradients, applies Adam and records which features fired. */
    void update(long step, double[] fireCounts, int rows);

    double[] lastFireCounts();

    double[] trainingState();

    void restoreTrainingState(double[] state);

    /** Statistics and architecture state for a checkpoint (the caller adds scales and config). */
    Checkpoints.TrainerState capture(long step, long tokens, long dataPosition);

    void restore(Checkpoints.TrainerState state, float[] parameters, float[] adamState);

    /** A whole step. */
    default StepLoss run(INDArray[] batches, long step) {
        StepLoss loss = gradients(batches, step);
        update(step, lastFireCounts(), (int) batches[0].rows());
        return loss;
    }
}
