#!/usr/bin/env python3
"""AUTO's slowdown over the best path on `panorm tune --verbose` measurements, per kind, for the built-in
crossovers and for each run's tuned ones (so run A's crossovers are also judged on run B's measurements).

Usage: scripts/tune-vs-built-in.py RUN.txt [RUN.txt ...]   (each the stdout of `panorm tune --verbose`)

Routes as AutoKernel does: Java up to the crossover, and a single row in Java whenever it is not 0;
"best" is the faster of Java on one thread and oneDNN on its faster thread count, as tune measures them.
"""
import re
import sys

# AutoModel's built-in float32 crossovers for the kinds tune measures.
BUILT_IN = {"forward": 16 * 768, "forward_global": 1 << 16, "backward": 1 << 16}


def load(path):
    points, crossovers = [], {}
    for line in open(path):
        fields = line.split()
        if len(fields) == 7 and fields[0] in ("inference", "training", "global", "backward"):
            rows, c = map(int, fields[2].split("x"))
            points.append((fields[1], rows, c, float(fields[3]), float(fields[4])))
        match = re.match(r"f32\.(\w+)\s+Java up to (\d+)", line)
        if match:
            crossovers[match.group(1)] = int(match.group(2))
    return points, crossovers


def slowdown(points, kind, crossover):
    ratios = []
    for k, rows, c, java, onednn in points:
        if k == kind:
            in_java = rows * c <= crossover or (crossover > 0 and rows == 1)
            ratios.append((java if in_java else onednn) / min(java, onednn))
    return sum(ratios) / len(ratios), max(ratios)


def main(paths):
    runs = {path: load(path) for path in paths}
    print("| measured in | kind | built-in: crossover, mean, worst | " + " | ".join(
        f"tuned in {path}: crossover, mean, worst" for path in paths) + " |")
    print("|---" * (3 + len(paths)) + "|")
    for path, (points, _) in runs.items():
        for kind, built_in in BUILT_IN.items():
            cells = [f"{built_in}, {'%.3f, %.2f' % slowdown(points, kind, built_in)}"]
            for _, (_, crossovers) in runs.items():
                tuned = crossovers[kind]
                cells.append(f"{tuned}, {'%.3f, %.2f' % slowdown(points, kind, tuned)}")
            print(f"| {path} | {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
