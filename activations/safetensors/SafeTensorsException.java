package activations.safetensors;

/** A safetensors file that cannot be read or written; the message names the file and the fix. */
public class SafeTensorsException extends RuntimeException {
    public SafeTensorsException(String message) {
        super(message);
    }
}
