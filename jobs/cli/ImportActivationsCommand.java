package jobs.cli;

import activations.safetensors.DType;
import activations.table.ActivationImporter;
import activations.table.ActivationManifest;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.concurrent.Callable;

/** {@code spindle import-activations}: turns .npy / .safetensors activations into an activation cache. */
@Command(name = "import-activations",
        mixinStandardHelpOptions = true,
        description = "Import your own activations (.npy float32/float16 [n, d], or a [n, d] tensor of a .safetensors file) "
                + "into an activation cache directory, one shard per input file.")
public final class ImportActivationsCommand implements Callable<Integer> {

    @Option(names = "--input", required = true, split = ",", paramLabel = "FILE",
            description = "Input .npy or .safetensors files (repeat the option or separate with commas); any Hadoop path.")
    List<String> inputs;

    @Option(names = "--hook", required = true, paramLabel = "NAME",
            description = "Hook name to store the vectors under, e.g. blocks.6.hook_resid_post.")
    String hook;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output activation cache directory (any Hadoop path).")
    String out;

    @Option(names = "--dtype", defaultValue = "bfloat16", paramLabel = "TYPE",
            description = "Storage dtype: bfloat16 (default), float16 or float32.")
    String dtype;

    @Option(names = "--tensor", paramLabel = "NAME", description = "Tensor to import from .safetensors files holding several.")
    String tensor;

    @Option(names = "--overwrite", description = "Replace an existing activation cache in --out (only once the new one is complete).")
    boolean overwrite;

    @Override
    public Integer call() {
        Configuration conf = new Configuration();
        ActivationManifest manifest = ActivationImporter.importFiles(conf, inputs.stream().map(Path::new).toList(),
                new Path(out), new ActivationImporter.Options(hook, DType.parse(dtype), tensor, overwrite));
        System.out.printf("imported %d rows of %s (d=%d, %s) from %d file(s) into %s%n", manifest.tokenCount(), hook,
                manifest.dim(hook), manifest.dtype(), inputs.size(), out);
        return 0;
    }
}
