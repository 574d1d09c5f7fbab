#!/usr/bin/env python3
"""Logistic regression (binary and multinomial, L2 = 1, full batch) in PyTorch
on the GPU, beside fuseflow's `cargo bench --bench gpu_train`.

Same workload: N rows x 32 standard-normal float32 features, labels drawn
from a softmax (sigmoid for two classes) over random linear scores, the
objective sum(log-loss) + (l2 / 2)|W|^2 with unpenalized intercepts. Trained
with Newton's method (the Hessian from torch.func, solved by Cholesky) on the
same device, stopping at max|grad|/N < 1e-5 (f32 resolution; fuseflow's
device trainer stops at its derived f32 floor). PyTorch's generator differs
from fuseflow's, so the data have the same distribution, not the same values.

    python3 benches/peers/torch_logistic.py --rows 1000000 [--fuseflow-ms BIN:MULTI]

With --fuseflow-ms (fuseflow's CUDA "resident" medians in ms, from the
criterion report) it prints the ratio torch / fuseflow per task.
"""
import argparse
import time

import torch

WIDTH = 32


def data(rows, classes, device):
    g = torch.Generator(device="cpu").manual_seed(42)
    x = torch.randn(rows, WIDTH, generator=g)
    w = torch.randn(WIDTH, classes, generator=g) * 0.3
    y = torch.multinomial(torch.softmax(x @ w, dim=1), 1, generator=g).squeeze(1)
    return x.to(device), y.to(device)


def newton(x, y, classes, l2=1.0, tol=1e-5, max_iter=100):
    n = x.shape[0]
    xa = torch.cat([x, torch.ones(n, 1, device=x.device)], dim=1)
    outputs = 1 if classes == 2 else classes
    theta = torch.zeros((WIDTH + 1) * outputs, device=x.device)
    mask = torch.ones(WIDTH + 1, outputs, device=x.device)
    mask[WIDTH, :] = 0  # intercepts are not penalized
    mask = mask.reshape(-1)

    def objective(t):
        z = xa @ t.reshape(WIDTH + 1, outputs)
        if outputs == 1:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                z[:, 0], y.float(), reduction="sum")
        else:
            loss = torch.nn.functional.cross_entropy(z, y, reduction="sum")
        return loss + 0.5 * l2 * (mask * t * t).sum()

    for it in range(max_iter):
        g = torch.func.grad(objective)(theta)
        if g.abs().max().item() / n < tol:
            return it
        h = torch.func.hessian(objective)(theta)
        h += 1e-5 * h.diagonal().max() * torch.eye(h.shape[0], device=x.device)
        step = torch.cholesky_solve(g[:, None], torch.linalg.cholesky(h))[:, 0]
        t = 1.0
        f0 = objective(theta)
        while objective(theta - t * step) > f0 - 1e-4 * t * (g @ step) and t > 1e-3:
            t *= 0.5
        theta = theta - t * step
    return max_iter


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fuseflow-ms", default=None,
                        help="fuseflow CUDA resident medians, BINARY:MULTINOMIAL in ms")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours = [float(v) for v in args.fuseflow_ms.split(":")] if args.fuseflow_ms else None
    print(f"torch {torch.__version__} on {device}"
          f" ({torch.cuda.get_device_name() if device == 'cuda' else 'no GPU: CPU figures'})")
    for i, (task, classes) in enumerate([("binary", 2), ("multinomial", 4)]):
        x, y = data(args.rows, classes, device)
        newton(x, y, classes)  # warm-up
        times = []
        for _ in range(args.repeats):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            iterations = newton(x, y, classes)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1e3)
        median = sorted(times)[len(times) // 2]
        line = f"| {task} | {args.rows}x{WIDTH} | torch {median:.1f} ms | {iterations} iterations |"
        if ours:
            line += f" torch / fuseflow = {median / ours[i]:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
