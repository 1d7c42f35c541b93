#!/usr/bin/python3
"""Tiny random Gemma-2 and GPT-NeoX checkpoints and their expected hooks, from a plain numpy reference.

The reference is written from transformers' modeling_gemma2.py and modeling_gpt_neox.py (eager
attention path), in float64, independently of Spindle's Java forward pass. Each fixture directory
gets config.json + model.safetensors in the exact Hugging Face tensor layout, and expected.safetensors
with every hook for every sequence of expected.json's tokens ([batch, seq, width], float32).
TransformerLens hook semantics: `*.hook_normalized` is the norm output before its gain.

Rerun (Debian's python3-numpy; deterministic, rewrites the fixtures next to this file):

    /usr/bin/python3 src/test/resources/hf-reference/make_reference.py

The script first runs hand-checked cases on tiny shapes (hand_checks) and, where python3-torch is
installed, compares its norms, GELUs and attention with torch's own ops (torch_checks); it stops if
any fails.
"""
import json
import math
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------- safetensors

def write_safetensors(path, tensors):
    """The safetensors layout: u64 header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        a = np.ascontiguousarray(array, dtype=np.float32)
        raw = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


# ----------------------------------------------------------------------------- shared pieces

def rms_normalized(x, eps):
    # Gemma2RMSNorm._norm: x * rsqrt(mean(x^2) + eps); the gain (1 + w) is applied by the caller
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def layer_normalized(x, eps):
    # nn.LayerNorm before weight and bias: biased variance
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def rope(x, positions, rotary_dim, theta):
    """rotate_half RoPE on the first rotary_dim dims of x [T, heads, head_dim]; the rest pass through."""
    inv_freq = 1.0 / (theta ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim))
    freqs = np.outer(positions, inv_freq)                      # [T, rotary_dim/2]
    emb = np.concatenate([freqs, freqs], axis=-1)               # [T, rotary_dim]
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated_half = np.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)
    return np.concatenate([rot * cos + rotated_half * sin, rest], axis=-1)


def causal_mask(T, window):
    """True where query i may see key j: j <= i and, with a window, j > i - window."""
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    visible = j <= i
    if window:
        visible &= j > i - window
    return visible


def attention(q, k, v, scaling, softcap, visible):
    """q [T, H, hd], k/v [T, KV, hd]; grouped heads share kv heads (repeat_kv). Returns [T, H*hd]."""
    T, H, hd = q.shape
    groups = H // k.shape[1]
    k = np.repeat(k, groups, axis=1)
    v = np.repeat(v, groups, axis=1)
    scores = np.einsum("thd,shd->hts", q, k) * scaling
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    scores = np.where(visible[None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    ctx = np.einsum("hts,shd->thd", p, v)
    return ctx.reshape(T, H * hd)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


_erf = np.vectorize(math.erf)


def gelu_exact(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


# ----------------------------------------------------------------------------- Gemma-2

def gemma2_sliding_layers(cfg):
    if cfg.get("layer_types") is not None:
        return [t == "sliding_attention" for t in cfg["layer_types"]]
    return [i % 2 == 0 for i in range(cfg["num_hidden_layers"])]  # not bool(layer_idx % 2)


def gemma2_forward(cfg, w, tokens):
    d, H, KV, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    hooks = {}
    # normalizer = torch.tensor(hidden_size**0.5, dtype=fp32)
    h = w["model.embed_tokens.weight"][tokens] * float(np.float32(math.sqrt(d)))
    hooks["hook_embed"] = h.copy()
    sliding = gemma2_sliding_layers(cfg)
    for l in range(cfg["num_hidden_layers"]):
        p, b = f"model.layers.{l}.", f"blocks.{l}."
        hooks[b + "hook_resid_pre"] = h.copy()
        n = rms_normalized(h, eps)
        hooks[b + "ln1.hook_normalized"] = n
        x = n * (1.0 + w[p + "input_layernorm.weight"])
        q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(T, H, hd)
        k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, hd)
        v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, hd)
        q, k = rope(q, pos, hd, cfg["rope_theta"]), rope(k, pos, hd, cfg["rope_theta"])
        window = cfg["sliding_window"] if sliding[l] else None
        ctx = attention(q, k, v, cfg["query_pre_attn_scalar"] ** -0.5, cfg["attn_logit_softcapping"],
                        causal_mask(T, window))
        o = ctx @ w[p + "self_attn.o_proj.weight"].T
        n = rms_normalized(o, eps)
        hooks[b + "ln1_post.hook_normalized"] = n
        attn_out = n * (1.0 + w[p + "post_attention_layernorm.weight"])
        hooks[b + "hook_attn_out"] = attn_out
        h = h + attn_out
        hooks[b + "hook_resid_mid"] = h.copy()
        n = rms_normalized(h, eps)
        hooks[b + "ln2.hook_normalized"] = n
        mlp_in = n * (1.0 + w[p + "pre_feedforward_layernorm.weight"])
        hooks[b + "mlp.hook_in"] = mlp_in
        gate = mlp_in @ w[p + "mlp.gate_proj.weight"].T
        up = mlp_in @ w[p + "mlp.up_proj.weight"].T
        post = gelu_tanh(gate) * up  # gelu_pytorch_tanh
        hooks[b + "mlp.hook_post"] = post
        down = post @ w[p + "mlp.down_proj.weight"].T
        n = rms_normalized(down, eps)
        hooks[b + "ln2_post.hook_normalized"] = n
        mlp_out = n * (1.0 + w[p + "post_feedforward_layernorm.weight"])
        hooks[b + "hook_mlp_out"] = mlp_out
        h = h + mlp_out
        hooks[b + "hook_resid_post"] = h.copy()
    n = rms_normalized(h, eps)
    hooks["ln_final.hook_normalized"] = n
    final = n * (1.0 + w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    logits = final @ head.T
    cap = cfg["final_logit_softcapping"]
    hooks["logits"] = cap * np.tanh(logits / cap)
    return hooks


def gemma2_weights(cfg, rng):
    d, H, KV, hd, m = (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
                       cfg["head_dim"], cfg["intermediate_size"])
    g = lambda *shape, s=0.5: rng.normal(0, s, shape)
    w = {"model.embed_tokens.weight": g(cfg["vocab_size"], d, s=0.6)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        # Gemma stores the gain minus one: values around 0 mean gains around 1
        for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                     "post_feedforward_layernorm"):
            w[p + norm + ".weight"] = g(d, s=0.3)
        w[p + "self_attn.q_proj.weight"] = g(H * hd, d)
        w[p + "self_attn.k_proj.weight"] = g(KV * hd, d)
        w[p + "self_attn.v_proj.weight"] = g(KV * hd, d)
        w[p + "self_attn.o_proj.weight"] = g(d, H * hd, s=0.4)
        w[p + "mlp.gate_proj.weight"] = g(m, d, s=0.4)
        w[p + "mlp.up_proj.weight"] = g(m, d, s=0.4)
        w[p + "mlp.down_proj.weight"] = g(d, m, s=0.3)
    w["model.norm.weight"] = g(d, s=0.3)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = g(cfg["vocab_size"], d, s=0.6)
    return w


def gemma2_config(**overrides):
    cfg = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
        "hidden_size": 16, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 8,                      # != hidden_size / heads = 4
        "intermediate_size": 24, "vocab_size": 37, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_activation": "gelu_pytorch_tanh",
        "hidden_act": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": 6,         # != head_dim
        "sliding_window": 3,                # shorter than the 9-token prompts
        "attn_logit_softcapping": 8.0,      # bends the larger random scores (up to ~20), leaves small ones
        "final_logit_softcapping": 6.0,     # likewise for logits (median |logit| ~2, max ~14)
        "tie_word_embeddings": True, "attention_bias": False,
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    }
    cfg.update(overrides)
    return cfg


# ----------------------------------------------------------------------------- GPT-NeoX

def neox_forward(cfg, w, tokens):
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    hs = d // H
    rotary = int(hs * cfg["rotary_pct"])
    eps = cfg["layer_norm_eps"]
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    hooks = {}
    h = w["gpt_neox.embed_in.weight"][tokens]
    hooks["hook_embed"] = h.copy()
    visible = causal_mask(T, None)

    def ln(x, name):
        n = layer_normalized(x, eps)
        return n, n * w[name + ".weight"] + w[name + ".bias"]

    def mlp(x, p):
        up = x @ w[p + "mlp.dense_h_to_4h.weight"].T + w[p + "mlp.dense_h_to_4h.bias"]
        act = gelu_exact(up) if cfg["hidden_act"] == "gelu" else gelu_tanh(up)
        return act, act @ w[p + "mlp.dense_4h_to_h.weight"].T + w[p + "mlp.dense_4h_to_h.bias"]

    for l in range(cfg["num_hidden_layers"]):
        p, b = f"gpt_neox.layers.{l}.", f"blocks.{l}."
        hooks[b + "hook_resid_pre"] = h.copy()
        n, x = ln(h, p + "input_layernorm")
        hooks[b + "ln1.hook_normalized"] = n
        # query_key_value(...).view(..., heads, 3 * head_size): per head [q | k | v]
        qkv = (x @ w[p + "attention.query_key_value.weight"].T + w[p + "attention.query_key_value.bias"])
        qkv = qkv.reshape(T, H, 3 * hs)
        q, k, v = qkv[..., :hs], qkv[..., hs:2 * hs], qkv[..., 2 * hs:]
        q, k = rope(q, pos, rotary, cfg["rotary_emb_base"]), rope(k, pos, rotary, cfg["rotary_emb_base"])
        ctx = attention(q, k, v, hs ** -0.5, None, visible)
        attn_out = ctx @ w[p + "attention.dense.weight"].T + w[p + "attention.dense.bias"]
        hooks[b + "hook_attn_out"] = attn_out
        if cfg["use_parallel_residual"]:
            n, x2 = ln(h, p + "post_attention_layernorm")       # reads the block input
        else:
            h = h + attn_out
            hooks[b + "hook_resid_mid"] = h.copy()
            n, x2 = ln(h, p + "post_attention_layernorm")
        hooks[b + "ln2.hook_normalized"] = n
        hooks[b + "mlp.hook_in"] = x2
        post, mlp_out = mlp(x2, p)
        hooks[b + "mlp.hook_post"] = post
        hooks[b + "hook_mlp_out"] = mlp_out
        h = h + attn_out + mlp_out if cfg["use_parallel_residual"] else h + mlp_out
        hooks[b + "hook_resid_post"] = h.copy()
    n, final = ln(h, "gpt_neox.final_layer_norm")
    hooks["ln_final.hook_normalized"] = n
    head = w["gpt_neox.embed_in.weight"] if cfg["tie_word_embeddings"] else w["embed_out.weight"]
    hooks["logits"] = final @ head.T
    return hooks


def neox_weights(cfg, rng):
    d, m = cfg["hidden_size"], cfg["intermediate_size"]
    g = lambda *shape, s=0.5: rng.normal(0, s, shape)
    w = {"gpt_neox.embed_in.weight": g(cfg["vocab_size"], d, s=0.6)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"gpt_neox.layers.{l}."
        for norm in ("input_layernorm", "post_attention_layernorm"):
            w[p + norm + ".weight"] = 1.0 + g(d, s=0.2)
            w[p + norm + ".bias"] = g(d, s=0.1)
        w[p + "attention.query_key_value.weight"] = g(3 * d, d)
        w[p + "attention.query_key_value.bias"] = g(3 * d, s=0.2)
        w[p + "attention.dense.weight"] = g(d, d, s=0.4)
        w[p + "attention.dense.bias"] = g(d, s=0.1)
        w[p + "mlp.dense_h_to_4h.weight"] = g(m, d, s=0.4)
        w[p + "mlp.dense_h_to_4h.bias"] = g(m, s=0.1)
        w[p + "mlp.dense_4h_to_h.weight"] = g(d, m, s=0.3)
        w[p + "mlp.dense_4h_to_h.bias"] = g(d, s=0.1)
    w["gpt_neox.final_layer_norm.weight"] = 1.0 + g(d, s=0.2)
    w["gpt_neox.final_layer_norm.bias"] = g(d, s=0.1)
    if not cfg["tie_word_embeddings"]:
        w["embed_out.weight"] = g(cfg["vocab_size"], d, s=0.6)
    return w


def neox_config(**overrides):
    cfg = {
        "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
        "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 3,   # head size 8
        "intermediate_size": 40, "vocab_size": 37, "max_position_embeddings": 64,
        "rotary_pct": 0.5, "rotary_emb_base": 10000,                          # 4 of 8 dims rotate
        "layer_norm_eps": 1e-5, "hidden_act": "gelu", "use_parallel_residual": True,
        "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
    }
    cfg.update(overrides)
    return cfg


# ----------------------------------------------------------------------------- hand checks

def close(a, b, tol=1e-12):
    return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=0)


def hand_checks():
    # RMSNorm of (3, 4): mean square 12.5, so x / sqrt(12.5 + eps); Gemma's gain 1 + w with w = (0, 1)
    n = rms_normalized(np.array([3.0, 4.0]), 0.0)
    assert close(n, [3 / math.sqrt(12.5), 4 / math.sqrt(12.5)])
    assert close(n * (1.0 + np.array([0.0, 1.0])), [0.848528137423857, 2.262741699796952])
    # LayerNorm of (1, 3): mean 2, variance 1 -> (-1, 1)
    assert close(layer_normalized(np.array([1.0, 3.0]), 0.0), [-1.0, 1.0])
    # Softcap 2 * tanh(x / 2) at x = 2: 2 * tanh(1) = 1.5231883119115297
    assert close(2 * np.tanh(2.0 / 2), 1.5231883119115297)
    # Partial rotary: head (1, 0, 5, 7), 2 rotary dims, position 1, theta 10000: inv_freq = (1,), so
    # the pair (x0, x1) = (1, 0) rotates by 1 radian to (cos 1, sin 1); dims 2, 3 pass through
    r = rope(np.array([[[1.0, 0.0, 5.0, 7.0]]]), np.array([1.0]), 2, 10000.0)
    assert close(r[0, 0], [math.cos(1), math.sin(1), 5.0, 7.0])
    # Full rotary, head_dim 4, position 2: inv_freq = (1, 1/100); pair (x0, x2) = (0, 1) by 2 rad
    r = rope(np.array([[[0.0, 0.0, 1.0, 0.0]]]), np.array([2.0]), 4, 10000.0)
    assert close(r[0, 0], [-math.sin(2), 0.0, math.cos(2), 0.0])
    # Sliding window 2 on 4 positions: each query sees itself and one key back
    assert (causal_mask(4, 2) == np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], bool)).all()
    # Attention with one key visible copies its value; equal scores average the values
    q = np.zeros((2, 1, 2)); k = np.zeros((2, 1, 2)); v = np.array([[[1.0, 2.0]], [[3.0, 6.0]]])
    assert close(attention(q, k, v, 1.0, None, causal_mask(2, None)), [[1, 2], [2, 4]])
    assert close(attention(q, k, v, 1.0, None, causal_mask(2, 1)), [[1, 2], [3, 6]])
    # GQA: 2 query heads on 1 kv head read the same values
    assert close(attention(np.zeros((1, 2, 1)), np.zeros((1, 1, 1)), np.array([[[5.0]]]), 1.0, None,
                           causal_mask(1, None)), [[5.0, 5.0]])
    # GELUs at 1: exact 0.8413447460685429, tanh approximation 0.8411919906082768
    assert close(gelu_exact(np.array(1.0)), 0.8413447460685429)
    assert close(gelu_tanh(np.array(1.0)), 0.8411919906082768)
    # NeoX fused qkv: head h's q, k, v are rows h*3hs .. h*3hs + 3hs of the output, in that order
    qkv = np.arange(12.0).reshape(1, 2, 6)   # 2 heads, head size 2
    assert close(qkv[..., :2], [[[0, 1], [6, 7]]]) and close(qkv[..., 4:], [[[4, 5], [10, 11]]])


def torch_checks():
    """Where Debian's python3-torch is installed, the numpy pieces agree with torch's own ops."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("torch not installed: skipping the torch cross-checks")
        return
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2, (5, 12))
    t = torch.tensor(x, dtype=torch.float64)
    assert close(layer_normalized(x, 1e-5), F.layer_norm(t, (12,), eps=1e-5).numpy(), 1e-12)
    assert close(gelu_exact(x), F.gelu(t).numpy(), 1e-12)
    assert close(gelu_tanh(x), F.gelu(t, approximate="tanh").numpy(), 1e-12)
    # Attention against torch's softmax with a -inf mask, GQA by repeat_interleave as repeat_kv does
    q, k, v = rng.normal(0, 1, (6, 4, 8)), rng.normal(0, 1, (6, 2, 8)), rng.normal(0, 1, (6, 2, 8))
    tq, tk, tv = (torch.tensor(a).transpose(0, 1) for a in (q, k, v))          # [heads, T, hd]
    tk, tv = tk.repeat_interleave(2, dim=0), tv.repeat_interleave(2, dim=0)
    scores = tq @ tk.transpose(1, 2) * 0.3
    scores = 2.0 * torch.tanh(scores / 2.0)
    mask = torch.tensor(causal_mask(6, 3))
    scores = scores.masked_fill(~mask, float("-inf"))
    want = (torch.softmax(scores, dim=-1) @ tv).transpose(0, 1).reshape(6, 32).numpy()
    assert close(attention(q, k, v, 0.3, 2.0, causal_mask(6, 3)), want, 1e-12)
    print("torch cross-checks passed (torch " + torch.__version__ + ")")


# ----------------------------------------------------------------------------- fixtures

TOKENS = [[2, 7, 1, 22, 9, 0, 14, 5, 36], [2, 11, 30, 6, 19, 8, 4, 13, 3]]


def write_fixture(name, cfg, weights, forward):
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out, "model.safetensors"), weights)
    per_seq = [forward(cfg, weights, np.array(t)) for t in TOKENS]
    expected = {hook: np.stack([h[hook] for h in per_seq]) for hook in per_seq[0]}
    write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump({"tokens": TOKENS, "hooks": list(expected)}, f, indent=1)
        f.write("\n")


def main():
    hand_checks()
    torch_checks()
    rng = np.random.default_rng(20261203)
    # Weights are rounded to fp32 first: the checkpoint stores F32, and the reference must run on
    # exactly the stored values.
    as_f32 = lambda w: {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}

    cfg = gemma2_config()
    write_fixture("gemma2", cfg, as_f32(gemma2_weights(cfg, rng)), gemma2_forward)

    # Newer transformers: explicit layer_types (here not the default alternation), untied lm_head
    cfg = gemma2_config(tie_word_embeddings=False,
                        layer_types=["full_attention", "sliding_attention", "sliding_attention"])
    write_fixture("gemma2-layer-types", cfg, as_f32(gemma2_weights(cfg, rng)), gemma2_forward)

    cfg = neox_config()
    write_fixture("gpt-neox-parallel", cfg, as_f32(neox_weights(cfg, rng)), neox_forward)

    # Sequential residual, tanh GELU, head size 12 with 6 rotary dims
    cfg = neox_config(use_parallel_residual=False, num_attention_heads=2, hidden_act="gelu_new")
    write_fixture("gpt-neox-sequential", cfg, as_f32(neox_weights(cfg, rng)), neox_forward)
    print("wrote", ", ".join(["gemma2", "gemma2-layer-types", "gpt-neox-parallel", "gpt-neox-sequential"]))


if __name__ == "__main__":
    main()
