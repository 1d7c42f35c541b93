package analysis.steering;

import activations.safetensors.SafeTensors;
import training.export.SaeLensDictionary;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a steering vector comes from: a tensor of a safetensors file (e.g. {@code spindle
 * contrast}'s {@code vectors.safetensors}, one tensor per hook) or a dictionary feature's decoder
 * row {@code W_dec[index]} as the SAELens directory stores it.
 */
public final class SteeringVectors {

    private SteeringVectors() {
    }

    /**
     * {@code FILE[:NAME]}; without NAME the tensor named {@code defaultName} (the hook), else the
     * file's only tensor. The tensor must hold {@code d} values ({@code [d]} or {@code [1, d]}).
     */
    public static float[] fromFile(String spec, String defaultName, int d) {
        String file = spec;
        String name = null;
        int colon = spec.lastIndexOf(':');
        if (colon > 0 && !Files.exists(Path.of(spec))) {
            file = spec.substring(0, colon);
            name = spec.substring(colon + 1);
        }
        Path path = Path.of(file);
        if (!Files.isRegularFile(path)) {
            throw new IllegalArgumentException("--vector " + file + ": no such file; give a .safetensors file, optionally :TENSOR_NAME");
        }
        try (SafeTensors st = SafeTensors.open(path)) {
            if (name == null) {
                if (st.contains(defaultName)) {
                    name = defaultName;
                } else if (st.tensors().size() == 1) {
                    name = st.tensors().keySet().iterator().next();
                } else {
                    throw new IllegalArgumentException("--vector " + file + " has no tensor named " + defaultName + " and holds "
                            + st.tensors().size() + " tensors " + st.tensors().keySet() + "; name one as FILE:NAME");
                }
            } else if (!st.contains(name)) {
                throw new IllegalArgumentException("--vector " + file + " has no tensor '" + name + "'; it holds " + st.tensors().keySet());
            }
            SafeTensors.TensorInfo info = st.info(name);
            if (info.elementCount() != d) {
                throw new IllegalArgumentException("--vector " + file + ":" + name + " has shape " + info.shapeString()
                        + " but the hook has width " + d + "; give a vector of the hook's width");
            }
            return st.floats(name);
        }
    }

    /** {@code SAE_DIR:INDEX}: the feature's decoder row. */
    public static float[] fromFeature(String spec, int d) {
        int colon = spec.lastIndexOf(':');
        if (colon <= 0 || colon == spec.length() - 1) {
            throw new IllegalArgumentException("--feature '" + spec + "' must be SAE_DIR:INDEX, e.g. target/demo/sae:17");
        }
        int index;
        try {
            index = Integer.parseInt(spec.substring(colon + 1).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--feature '" + spec + "': '" + spec.substring(colon + 1) + "' is not a feature index");
        }
        Path dir = Path.of(spec.substring(0, colon));
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("--feature " + dir + ": no such directory; give a SAELens SAE directory");
        }
        SaeLensDictionary sae = SaeLensDictionary.load(dir);
        if (index < 0 || index >= sae.dSae()) {
            throw new IllegalArgumentException("--feature index " + index + " is out of range: " + dir + " has features 0.."
                    + (sae.dSae() - 1));
        }
        if (sae.dOut() != d) {
            throw new IllegalArgumentException("--feature " + dir + " decodes to width " + sae.dOut() + " but the hook has width " + d
                    + "; steer at the hook the dictionary was trained on");
        }
        return sae.wDec().getRow(index).toFloatVector();
    }

    /** The hook a SAELens dictionary was trained on (cfg.json), or null. */
    public static String dictionaryHook(String spec) {
        int colon = spec.lastIndexOf(':');
        SaeLensDictionary sae = SaeLensDictionary.load(Path.of(spec.substring(0, colon)));
        String hook = sae.cfg().path("metadata").path("hook_name").asText(sae.cfg().path("hook_name").asText(""));
        return hook.isEmpty() ? null : hook;
    }
}
