#!/usr/bin/env python3
"""Checks `scripts/panorm normalize` against a float64 NumPy layer norm on fresh random inputs.

Each case writes new random .npy files (seeded; the seed is printed so a run can be replayed),
runs the CLI with both backends, and checks every element against the README's tolerance:
    |y - y_ref| <= K * u * (kappa * max(1, |gamma_c|) + |beta_c|),  u = 2**-24,
    kappa = max|x_row| / sqrt(var_row + eps),  K = 8 (onednn) or 2 (java).
Usage: scripts/verify-against-numpy.py [--seed N]
"""
import argparse, os, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = {"onednn": 8.0, "java": 2.0}
U = 2.0 ** -24


def reference(x, gamma, beta, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma.astype(np.float64)
    if beta is not None:
        y = y + beta.astype(np.float64)
    kappa = np.abs(x).max(axis=-1, keepdims=True) / np.sqrt(var + eps)
    return y, kappa


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}")
    rng = np.random.default_rng(args.seed)
    cases = [((int(rng.integers(1, 40)), 768), 0.0, 1.0, True, True),
             ((3, int(rng.integers(2, 50)), int(rng.integers(1, 3000))), float(rng.normal(0, 10)), 2.0, True, True),
             ((int(rng.integers(1, 6)), 65536), 1e4, 1.0, True, False),
             ((100, 1000), -5.0, 1e-3, False, True),
             ((7, int(rng.integers(1, 9))), 0.0, 1.0, False, False)]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (shape, mean, std, with_gamma, with_beta) in enumerate(cases):
            c = shape[-1]
            x = (mean + std * rng.standard_normal(shape)).astype(np.float32)
            gamma = rng.normal(1, 0.5, c).astype(np.float32) if with_gamma else None
            beta = rng.normal(0, 1, c).astype(np.float32) if with_beta else None
            eps = float(10.0 ** rng.uniform(-6, -3))
            np.save(f"{tmp}/x.npy", x)
            extra = ["--eps", repr(eps)]
            if gamma is not None:
                np.save(f"{tmp}/g.npy", gamma)
                extra += ["--gamma", f"{tmp}/g.npy"]
            if beta is not None:
                np.save(f"{tmp}/b.npy", beta)
                extra += ["--beta", f"{tmp}/b.npy"]
            want, kappa = reference(x, gamma, beta, eps)
            g = np.abs(gamma.astype(np.float64)) if gamma is not None else 1.0
            b = np.abs(beta.astype(np.float64)) if beta is not None else 0.0
            for backend in ("onednn", "java"):
                out = f"{tmp}/y-{backend}.npy"
                subprocess.run([f"{ROOT}/scripts/panorm", "normalize", f"{tmp}/x.npy", out, "--backend", backend] + extra,
                               check=True, stdout=subprocess.DEVNULL)
                got = np.load(out)
                assert got.dtype == np.float32 and got.shape == x.shape, (got.dtype, got.shape)
                err = np.abs(got.astype(np.float64) - want)
                tol = K[backend] * U * (kappa * np.maximum(1.0, g) + b)
                ratio = float((err / tol).max())
                ok = bool((err <= tol).all())
                failures += not ok
                print(f"case {i}: shape {shape} mean {mean:.3g} std {std:.3g} eps {eps:.2e} "
                      f"gamma {with_gamma} beta {with_beta} {backend:6s}: max error {err.max():.3e}, "
                      f"max error/tolerance {ratio:.3f} {'ok' if ok else 'FAIL'}")
    print("all within tolerance" if failures == 0 else f"{failures} case(s) out of tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
