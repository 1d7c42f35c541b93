package training.optim;

import org.nd4j.linalg.schedule.ISchedule;

/**
 * Constant {@code value}, then a linear decay to 0 over the last {@code decayFraction} of
 * {@code totalSteps} (by iteration). Written because ND4J's schedules cannot express it:
 * PolySchedule/InverseSchedule/ExponentialSchedule decay from the first step, StepSchedule and
 * MapSchedule are piecewise constant. Compose with ND4J's RampSchedule for the warmup.
 */
public final class LinearTailDecaySchedule implements ISchedule {

    private static final long serialVersionUID = 1L;

    private final double value;
    private final long totalSteps;
    private final long decaySteps;

    public LinearTailDecaySchedule(double value, long totalSteps, double decayFraction) {
        if (totalSteps < 1) {
            throw new IllegalArgumentException("schedule needs at least 1 step, got " + totalSteps);
        }
        if (decayFraction < 0 || decayFraction > 1) {
            throw new IllegalArgumentException("decay fraction " + decayFraction + " is outside [0, 1]");
        }
        this.value = value;
        this.totalSteps = totalSteps;
        this.decaySteps = Math.round(totalSteps * decayFraction);
    }

    @Override
    public double valueAt(int iteration, int epoch) {
        long decayStart = totalSteps - decaySteps;
        if (decaySteps == 0 || iteration < decayStart) {
            return value;
        }
        // Step decayStart still uses the full value; the last step (totalSteps - 1) a 1/decaySteps share.
        double remaining = Math.max(0, totalSteps - iteration) / (double) decaySteps;
        return value * remaining;
    }

    @Override
    public ISchedule clone() {
        return new LinearTailDecaySchedule(value, totalSteps, decaySteps / (double) totalSteps);
    }
}
