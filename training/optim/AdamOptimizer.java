package training.optim;

import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * ND4J's Adam over one flat parameter array: the updater turns the flat gradient into the update
 * in place (native op), and the parameters take it in one subtraction. Its state (m then v) is one
 * [1, 2n] array that checkpoints save and restore.
 */
public final class AdamOptimizer {

    private final Adam adam;
    private final INDArray state;
    private final GradientUpdater<?> updater;
    private final ISchedule learningRate;

    public AdamOptimizer(long parameterCount, ISchedule learningRate, double beta1, double beta2, double epsilon,
                         org.nd4j.linalg.api.buffer.DataType dtype) {
        this.learningRate = learningRate;
        adam = Adam.builder().learningRateSchedule(learningRate).beta1(beta1).beta2(beta2).epsilon(epsilon).build();
        state = Nd4j.zeros(dtype, 1, adam.stateSize(parameterCount));
        updater = adam.instantiate(state, true);
    }

    /**
     * One update at 0-based {@code iteration} (the lr schedule and Adam's bias correction use it).
     * {@code gradients} is overwritten with the applied update.
     */
    public void step(INDArray parameters, INDArray gradients, int iteration) {
        updater.applyUpdater(gradients, iteration, 0);
        parameters.subi(gradients);
    }

    /**
     * As {@link #step(INDArray, INDArray, int)}, with the update of parameters {@code from..end}
     * multiplied by {@code tailFactor}: those parameters train at {@code tailFactor} times the lr
     * (Adam's update is proportional to the lr), e.g. JumpReLU log-thresholds at their own rate.
     */
    public void step(INDArray parameters, INDArray gradients, int iteration, long from, double tailFactor) {
        updater.applyUpdater(gradients, iteration, 0);
        if (tailFactor != 1 && from < gradients.length()) {
            gradients.get(org.nd4j.linalg.indexing.NDArrayIndex.point(0),
                    org.nd4j.linalg.indexing.NDArrayIndex.interval(from, gradients.length())).muli(tailFactor);
        }
        parameters.subi(gradients);
    }

    public double learningRate(int iteration) {
        return learningRate.valueAt(iteration, 0);
    }

    /** Adam's moments, m then v, as one [1, 2n] array (a live view: copy before keeping). */
    public INDArray state() {
        return state;
    }

    public void restoreState(INDArray saved) {
        if (saved.length() != state.length()) {
            throw new IllegalArgumentException("Adam state has " + saved.length() + " values, expected " + state.length()
                    + "; the checkpoint belongs to a differently sized model");
        }
        state.assign(saved.reshape(state.shape()));
    }
}
