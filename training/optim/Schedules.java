package training.optim;

import org.nd4j.linalg.schedule.FixedSchedule;
import org.nd4j.linalg.schedule.ISchedule;
import org.nd4j.linalg.schedule.RampSchedule;

/** The shared recipe's schedules, composed from ND4J's where they exist. */
public final class Schedules {

    private Schedules() {
    }

    /** Linear warmup (ND4J RampSchedule), constant, then linear decay over the last {@code decayFraction}. */
    public static ISchedule learningRate(double lr, int warmupSteps, long totalSteps, double decayFraction) {
        ISchedule body = new LinearTailDecaySchedule(lr, totalSteps, decayFraction);
        return warmupSteps > 0 ? new RampSchedule(body, warmupSteps) : body;
    }

    /** The sparsity coefficient, ramped linearly from ~0 over {@code warmupSteps}, then constant. */
    public static ISchedule sparsityCoefficient(double coefficient, int warmupSteps) {
        ISchedule body = new FixedSchedule(coefficient);
        return warmupSteps > 0 ? new RampSchedule(body, warmupSteps) : body;
    }
}
