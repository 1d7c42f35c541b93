package jobs.spark;

import org.apache.spark.TaskContext;
import org.apache.spark.resource.ResourceInformation;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Binds a task's thread to the GPU Spark assigned it (spark.task.resource.gpu.amount), so ND4J
 * allocates the task's model replica and buffers there. A no-op on CPU executors.
 */
public final class GpuAssignment {

    private GpuAssignment() {
    }

    /** The device index the current task was given, bound to this thread; -1 when it has no GPU. */
    public static int bindTaskDevice(TaskContext task) {
        if (task == null) {
            return -1;
        }
        scala.Option<ResourceInformation> gpu = task.resources().get("gpu");
        if (gpu.isEmpty() || gpu.get().addresses().length == 0) {
            return -1;
        }
        int device = Integer.parseInt(gpu.get().addresses()[0].trim());
        Nd4j.getAffinityManager().unsafeSetDevice(device);
        return device;
    }
}
