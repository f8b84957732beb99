#!/usr/bin/env python3
"""Checks `scripts/panorm normalize` and `scripts/panorm backward` against float64 NumPy on fresh
random inputs.

Each case writes new random .npy files (seeded; the seed is printed so a run can be replayed),
runs the CLI with each backend, and checks every element against the tolerances of docs/accuracy.md,
u = 2**-24, K = 8 (onednn, java: the Vector API kernels) or 2 (java-scalar), per row kappa = max|x| / sqrt(var + eps):
    y:      K * u * (kappa * max(1, |gamma_c|) + |beta_c|)
    mean:   K * u * max|x|;   variance: K * u * (var + sqrt(var) * max|x|)
    dx:     K * u * rstd * max_c|dy * gamma| * (kappa + 1)
    dgamma: K * u * sum_rows |dy| * (kappa + 1);   dbeta: K * u * sum_rows |dy|
Usage: scripts/verify-against-numpy.py [--seed N]
"""
import argparse, os, subprocess, sys, tempfile, time
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = {"onednn": 8.0, "java": 8.0, "java-scalar": 2.0}
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


def reference_backward(x, dy, gamma, eps):
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    g = dy * (gamma.astype(np.float64) if gamma is not None else 1.0)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    dx = rstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    c = x.shape[-1]
    dgamma = (dy * xhat).reshape(-1, c).sum(axis=0)
    dbeta = dy.reshape(-1, c).sum(axis=0)
    return dx, dgamma, dbeta


def report(label, got, want, tol):
    err = np.abs(got.astype(np.float64) - want)
    tol = np.broadcast_to(tol, err.shape)
    # A zero tolerance (e.g. dbeta of a row of zero gradients) allows only an exact result.
    ratios = np.divide(err, tol, out=np.where(err > 0, np.inf, 0.0), where=tol > 0)
    ratio = float(ratios.max()) if err.size else 0.0
    ok = bool((err <= tol).all())
    print(f"{label}: max error {err.max() if err.size else 0:.3e}, max error/tolerance {ratio:.3f} {'ok' if ok else 'FAIL'}")
    return ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more (NumPy's seeds are), got {args.seed}")
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
            label = f"case {i}: shape {shape} mean {mean:.3g} std {std:.3g} eps {eps:.2e} gamma {with_gamma} beta {with_beta}"
            x64 = x.astype(np.float64)
            max_abs = np.abs(x64).max(axis=-1)
            var = x64.var(axis=-1)
            for backend in ("onednn", "java", "java-scalar"):
                k = K[backend]
                out = f"{tmp}/y-{backend}.npy"
                subprocess.run([f"{ROOT}/scripts/panorm", "normalize", f"{tmp}/x.npy", out, "--backend", backend,
                                "--stats", f"{tmp}/m.npy", f"{tmp}/v.npy"] + extra, check=True, stdout=subprocess.DEVNULL)
                got = np.load(out)
                assert got.dtype == np.float32 and got.shape == x.shape, (got.dtype, got.shape)
                failures += not report(f"{label} {backend:11s} y", got, want, k * U * (kappa * np.maximum(1.0, g) + b))
                failures += not report(f"{label} {backend:11s} mean", np.load(f"{tmp}/m.npy"), x64.mean(axis=-1),
                                       k * U * max_abs)
                failures += not report(f"{label} {backend:11s} variance", np.load(f"{tmp}/v.npy"), var,
                                       k * U * (var + np.sqrt(var) * max_abs))
                # Backward, with a fresh dLoss/dy.
                dy = rng.standard_normal(shape).astype(np.float32)
                np.save(f"{tmp}/dy.npy", dy)
                grads = ["--out-dbeta", f"{tmp}/db.npy"]
                if gamma is not None:
                    grads += ["--gamma", f"{tmp}/g.npy", "--out-dgamma", f"{tmp}/dg.npy"]
                subprocess.run([f"{ROOT}/scripts/panorm", "backward", f"{tmp}/x.npy", f"{tmp}/dy.npy", f"{tmp}/dx.npy",
                                "--eps", repr(eps), "--backend", backend] + grads, check=True, stdout=subprocess.DEVNULL)
                dx, dgamma, dbeta = reference_backward(x, dy, gamma, eps)
                rstd = 1 / np.sqrt(var + eps)
                kap = (max_abs * rstd)[..., None] + 1
                big_g = np.abs(dy.astype(np.float64) * (gamma if gamma is not None else 1.0)).max(axis=-1)[..., None]
                failures += not report(f"{label} {backend:11s} dx", np.load(f"{tmp}/dx.npy"), dx,
                                       k * U * rstd[..., None] * big_g * kap)
                abs_dy = np.abs(dy.astype(np.float64)).reshape(-1, c)
                if gamma is not None:
                    failures += not report(f"{label} {backend:11s} dgamma", np.load(f"{tmp}/dg.npy"), dgamma,
                                           k * U * (abs_dy * kap.reshape(-1, 1)).sum(axis=0))
                failures += not report(f"{label} {backend:11s} dbeta", np.load(f"{tmp}/db.npy"), dbeta,
                                       k * U * abs_dy.sum(axis=0))
    print("all within tolerance" if failures == 0 else f"{failures} check(s) out of tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:  # scripts/panorm said why on stderr
        sys.exit(f"verify-against-numpy: {' '.join(e.cmd[:2])} ... failed with exit status {e.returncode}")
