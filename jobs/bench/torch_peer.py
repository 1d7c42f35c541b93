#!/usr/bin/env python3
"""PyTorch peer figures for `spindle bench --peer torch`.

The same three workloads as Spindle's own figures, at the shapes and with the FLOP accounting the
bench passes in, written plainly as a SAELens user would run them on a CPU: a GPT-2 block stack
without the unembedding (caching forward), a JumpReLU SAE step with Adam (straight-through
threshold gradients as in SAELens 6), a TopK SAE step (dense decoding of the scattered top-k, as
SAELens trains it), and a JumpReLU cross-layer transcoder step. Prints one JSON
object on standard output. Needs python3 with torch (Debian: apt-get install python3-torch).

    python3 torch_peer.py forward --layers 12 --d 768 --heads 12 --context 128 --batch 32 --seconds 15 --threads 2
    python3 torch_peer.py sae --d-in 768 --d-sae 16384 --batch 4096 --steps 5 --threads 2
    python3 torch_peer.py sae-topk --d-in 768 --d-sae 16384 --batch 4096 --steps 5 --k 64 --threads 2
    python3 torch_peer.py clt --layers 4 --d 256 --features 4096 --batch 4096 --steps 6 --threads 2
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """GPT-2 block: pre-LayerNorm attention and a GELU MLP, as in Hugging Face's GPT2Block."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (y.view(b, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        scores = scores.masked_fill(mask[:t, :t], float("-inf"))
        attn = torch.softmax(scores, dim=-1) @ v
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


def forward(args):
    torch.manual_seed(1)
    d = args.d
    embed = nn.Embedding(50257, d)
    pos = nn.Embedding(args.context, d)
    blocks = nn.ModuleList(Block(d, args.heads) for _ in range(args.layers))
    mask = torch.triu(torch.ones(args.context, args.context, dtype=torch.bool), diagonal=1)
    tokens = torch.randint(0, 50257, (args.batch, args.context))
    positions = torch.arange(args.context)

    def run():
        x = embed(tokens) + pos(positions)
        for block in blocks:
            x = block(x, mask)
        return x

    with torch.inference_mode():
        run()  # warm-up
        passes, start = 0, time.perf_counter()
        while True:
            run()
            passes += 1
            if time.perf_counter() - start >= args.seconds:
                break
        elapsed = time.perf_counter() - start
    tokens_per_second = passes * args.batch * args.context / elapsed
    flops_per_token = args.layers * (24 * d * d + 2.0 * args.context * d)
    return {"tokens_per_second": tokens_per_second, "gflops": tokens_per_second * flops_per_token / 1e9}


class StepWithRectangleGradient(torch.autograd.Function):
    """H(z - theta), with SAELens's straight-through gradient to theta (rectangle kernel)."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        window = ((z - theta).abs() < ctx.bandwidth / 2).to(z.dtype)
        return None, (-grad * window / ctx.bandwidth).sum(0), None


class JumpReLU(torch.autograd.Function):
    """z * H(z - theta), gradient to z through the gate and to theta by the rectangle kernel."""

    @staticmethod
    def forward(ctx, z, theta, bandwidth):
        ctx.save_for_backward(z, theta)
        ctx.bandwidth = bandwidth
        return z * (z > theta).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, theta = ctx.saved_tensors
        gate = (z > theta).to(z.dtype)
        window = ((z - theta).abs() < ctx.bandwidth / 2).to(z.dtype)
        return grad * gate, (-grad * window * theta / ctx.bandwidth).sum(0), None


def timed_steps(step, steps):
    step()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def sae(args):
    torch.manual_seed(1)
    d_in, d_sae, batch = args.d_in, args.d_sae, args.batch
    w_enc = nn.Parameter(torch.randn(d_in, d_sae) * 0.03)
    b_enc = nn.Parameter(torch.zeros(d_sae))
    w_dec = nn.Parameter(torch.randn(d_sae, d_in) * 0.03)
    b_dec = nn.Parameter(torch.zeros(d_in))
    log_threshold = nn.Parameter(torch.full((d_sae,), math.log(0.5)))
    params = [w_enc, b_enc, w_dec, b_dec, log_threshold]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    x = torch.randn(batch, d_in)
    bandwidth, l0_coefficient = 0.05, 1.0

    def step():
        optimizer.zero_grad(set_to_none=True)
        z = F.relu(x @ w_enc + b_enc)
        theta = log_threshold.exp()
        f = JumpReLU.apply(z, theta, bandwidth)
        x_hat = f @ w_dec + b_dec
        mse = (x_hat - x).pow(2).sum(-1).mean()
        l0 = StepWithRectangleGradient.apply(z, theta, bandwidth).sum(-1).mean()
        (mse + l0_coefficient * l0).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    seconds = timed_steps(step, args.steps)
    flops = 10.0 * d_in * d_sae * batch
    return {"step_seconds": seconds, "tokens_per_second": batch / seconds, "gflops": flops / seconds / 1e9}


def sae_topk(args):
    """A TopK SAE step as SAELens trains one: top-k of the pre-activations scattered into a dense
    [batch, d_sae] activation, a dense decoder product, MSE, Adam (AuxK is off: no dead latents yet)."""
    torch.manual_seed(1)
    d_in, d_sae, batch, k = args.d_in, args.d_sae, args.batch, args.k
    w_enc = nn.Parameter(torch.randn(d_in, d_sae) * 0.03)
    b_enc = nn.Parameter(torch.zeros(d_sae))
    w_dec = nn.Parameter(torch.randn(d_sae, d_in) * 0.03)
    b_dec = nn.Parameter(torch.zeros(d_in))
    params = [w_enc, b_enc, w_dec, b_dec]
    optimizer = torch.optim.Adam(params, lr=1e-4)
    x = torch.randn(batch, d_in)

    def step():
        optimizer.zero_grad(set_to_none=True)
        hidden_pre = (x - b_dec) @ w_enc + b_enc
        top = hidden_pre.topk(k, dim=-1, sorted=False)
        f = torch.zeros_like(hidden_pre).scatter(-1, top.indices, F.relu(top.values))
        x_hat = f @ w_dec + b_dec
        mse = (x_hat - x).pow(2).sum(-1).mean()
        mse.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    seconds = timed_steps(step, args.steps)
    flops = 10.0 * d_in * d_sae * batch
    return {"step_seconds": seconds, "tokens_per_second": batch / seconds, "gflops": flops / seconds / 1e9}


def clt(args):
    torch.manual_seed(3)
    layers, d, n, batch = args.layers, args.d, args.features, args.batch
    w_enc = [nn.Parameter(torch.randn(d, n) / math.sqrt(d)) for _ in range(layers)]
    b_enc = [nn.Parameter(torch.zeros(n)) for _ in range(layers)]
    log_threshold = [nn.Parameter(torch.full((n,), math.log(0.3))) for _ in range(layers)]
    # W_dec[source][target - source]: layer `source`'s features write to every later layer.
    w_dec = [[nn.Parameter(torch.randn(n, d) / math.sqrt(n)) for _ in range(source, layers)] for source in range(layers)]
    b_dec = [nn.Parameter(torch.zeros(d)) for _ in range(layers)]
    params = w_enc + b_enc + log_threshold + [w for row in w_dec for w in row] + b_dec
    optimizer = torch.optim.Adam(params, lr=1e-4)
    inputs = [torch.randn(batch, d) for _ in range(layers)]
    targets = [torch.randn(batch, d) for _ in range(layers)]
    bandwidth, l0_coefficient = 0.05, 0.01

    def step():
        optimizer.zero_grad(set_to_none=True)
        acts, l0 = [], 0.0
        for layer in range(layers):
            z = F.relu(inputs[layer] @ w_enc[layer] + b_enc[layer])
            theta = log_threshold[layer].exp()
            acts.append(JumpReLU.apply(z, theta, bandwidth))
            l0 = l0 + StepWithRectangleGradient.apply(z, theta, bandwidth).sum(-1).mean()
        mse = 0.0
        for target in range(layers):
            out = b_dec[target] + sum(acts[s] @ w_dec[s][target - s] for s in range(target + 1))
            mse = mse + (out - targets[target]).pow(2).sum(-1).mean()
        (mse + l0_coefficient * l0).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    seconds = timed_steps(step, args.steps)
    flops_per_token = 3 * (2.0 * d * n * layers + 2.0 * n * d * layers * (layers + 1) / 2.0)
    return {"step_seconds": seconds, "tokens_per_second": batch / seconds,
            "gflops": flops_per_token * batch / seconds / 1e9}


def loaded_blas():
    """The BLAS library torch's products ran on (Debian's torch uses whichever libblas.so.3 the
    alternatives system points at: the reference BLAS is ~10x slower than OpenBLAS)."""
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return sorted(paths)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", choices=["forward", "sae", "sae-topk", "clt"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--d-in", type=int, default=768)
    parser.add_argument("--d-sae", type=int, default=16384)
    parser.add_argument("--features", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--k", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"forward": forward, "sae": sae, "sae-topk": sae_topk, "clt": clt}[args.workload](args)
    result.update({"torch": torch.__version__, "threads": torch.get_num_threads(), "blas": loaded_blas()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
