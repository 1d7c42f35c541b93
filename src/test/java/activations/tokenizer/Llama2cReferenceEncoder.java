package activations.tokenizer;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A straightforward port of llama2.c's {@code encode()} (run.c), working on bytes as the C code does.
 * Test oracle only: independent of the converter, which works on Unicode strings.
 */
public final class Llama2cReferenceEncoder {

    private final String[] vocab; // byte strings, one char per byte (ISO-8859-1)
    private final float[] scores;
    private final Map<String, Integer> lookup = new HashMap<>();

    public Llama2cReferenceEncoder(Path tokenizerBin) throws IOException {
        ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(tokenizerBin)).order(ByteOrder.LITTLE_ENDIAN);
        in.getInt(); // max_token_length
        List<String> pieces = new ArrayList<>();
        List<Float> scoreList = new ArrayList<>();
        while (in.hasRemaining()) {
            scoreList.add(in.getFloat());
            byte[] bytes = new byte[in.getInt()];
            in.get(bytes);
            pieces.add(new String(bytes, StandardCharsets.ISO_8859_1));
        }
        vocab = pieces.toArray(new String[0]);
        scores = new float[vocab.length];
        for (int i = 0; i < vocab.length; i++) {
            scores[i] = scoreList.get(i);
            lookup.put(vocab[i], i);
        }
    }

    public int[] encode(String text, boolean bos) {
        byte[] t = text.getBytes(StandardCharsets.UTF_8);
        List<Integer> tokens = new ArrayList<>();
        if (bos) {
            tokens.add(1);
        }
        if (t.length > 0) {
            tokens.add(lookup.get(" "));
        }
        byte[] buffer = new byte[8];
        int length = 0;
        for (int c = 0; c < t.length; c++) {
            if ((t[c] & 0xC0) != 0x80) {
                length = 0;
            }
            buffer[length++] = t[c];
            if (c + 1 < t.length && (t[c + 1] & 0xC0) == 0x80 && length < 4) {
                continue;
            }
            Integer id = lookup.get(new String(buffer, 0, length, StandardCharsets.ISO_8859_1));
            if (id != null) {
                tokens.add(id);
            } else {
                for (int i = 0; i < length; i++) {
                    tokens.add((buffer[i] & 0xFF) + 3);
                }
            }
            length = 0;
        }
        while (true) {
            float bestScore = -1e10f;
            int bestId = -1;
            int bestIndex = -1;
            for (int i = 0; i < tokens.size() - 1; i++) {
                Integer id = lookup.get(vocab[tokens.get(i)] + vocab[tokens.get(i + 1)]);
                if (id != null && scores[id] > bestScore) {
                    bestScore = scores[id];
                    bestId = id;
                    bestIndex = i;
                }
            }
            if (bestIndex == -1) {
                break;
            }
            tokens.set(bestIndex, bestId);
            tokens.remove(bestIndex + 1);
        }
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }
}
