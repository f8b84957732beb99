#!/usr/bin/env python3
"""AUTO / best fixed choice, per shape, from JMH JSON results (scripts/bench.sh writes target/bench/jmh.json).

Usage: scripts/auto-vs-best.py [target/bench/jmh.json ...]

For LayerNormBenchmark, the best of oneDNN 1t, oneDNN 2t, vector 1t and vector 2t in the same files, per
operation, data type, pass and shape; for MixedShapeBenchmark, the same per shape of the cycle (its secondary
metrics, the mean of the iterations). Prints a Markdown table; combinations without AUTO or without a fixed
choice are left out.
"""
import json
import sys
from collections import defaultdict

FIXED = ("onednn-1t", "onednn-2t", "java-1t", "java-2t")


def read(path):
    """The JMH runs in a JSON file, or the script's exit with a line saying why not."""
    try:
        with open(path) as file:
            runs = json.load(file)
    except (OSError, ValueError) as e:
        sys.exit(f"auto-vs-best: cannot read {path}: {e}")
    if not isinstance(runs, list):
        sys.exit(f"auto-vs-best: {path} is not JMH's JSON output (a list of runs)")
    return runs


def main(paths):
    times = defaultdict(dict)  # (benchmark, op, dtype, pass, shape) -> impl -> us
    for path in paths or ["target/bench/jmh.json"]:
        for run in read(path):
            name = run["benchmark"].rsplit(".", 2)
            bench, pass_ = name[-2], name[-1]
            p = run["params"]
            op, dtype, impl = p.get("op", "layer"), p.get("dtype", "f32"), p["impl"]
            if bench == "MixedShapeBenchmark":
                for metric, value in run["secondaryMetrics"].items():
                    iterations = [x for fork in value["rawData"] for x in fork]
                    times[("mixed", op, dtype, pass_, metric.removeprefix("shape"))][impl] = sum(iterations) / len(
                        iterations)
            elif bench == "LayerNormBenchmark":
                times[("one per fork", op, dtype, pass_, p["shape"])][impl] = run["primaryMetric"]["score"]
    print("| benchmark | op | dtype | pass | shape | AUTO | best fixed | AUTO / best |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(times):
        impls = times[key]
        fixed = {k: v for k, v in impls.items() if k in FIXED}
        if "auto" not in impls or not fixed:
            continue
        best = min(fixed, key=fixed.get)
        print("| %s | %s | %s | %s | %s | %.3g us | %.3g us (%s) | %.2f |" % (
            *key, impls["auto"], fixed[best], best, impls["auto"] / fixed[best]))


if __name__ == "__main__":
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    main(sys.argv[1:])
