package activations.hooks;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * What a forward pass should return and change: the hooks to capture (only those are copied
 * out) and interventions per hook. Interventions run before capture, so a captured value is the
 * value the rest of the model saw.
 */
public final class ForwardRequest {

    private final Set<HookPoint> capture = new LinkedHashSet<>();
    private final Map<HookPoint, List<Intervention>> interventions = new LinkedHashMap<>();

    public static ForwardRequest capture(HookPoint... hooks) {
        ForwardRequest r = new ForwardRequest();
        Collections.addAll(r.capture, hooks);
        return r;
    }

    public static ForwardRequest capture(List<HookPoint> hooks) {
        ForwardRequest r = new ForwardRequest();
        r.capture.addAll(hooks);
        return r;
    }

    public ForwardRequest alsoCapture(HookPoint hook) {
        capture.add(hook);
        return this;
    }

    public ForwardRequest intervene(HookPoint hook, Intervention intervention) {
        interventions.computeIfAbsent(hook, h -> new ArrayList<>()).add(intervention);
        return this;
    }

    public Set<HookPoint> captured() {
        return Collections.unmodifiableSet(capture);
    }

    public List<Intervention> interventionsAt(HookPoint hook) {
        return interventions.getOrDefault(hook, List.of());
    }

    /** True when the pass must visit this hook (to capture it or to change it). */
    public boolean touches(HookPoint hook) {
        return capture.contains(hook) || interventions.containsKey(hook);
    }

    /** Every hook the pass must reach; the forward pass stops after the last one. */
    public Set<HookPoint> touched() {
        Set<HookPoint> all = new LinkedHashSet<>(capture);
        all.addAll(interventions.keySet());
        return all;
    }
}
