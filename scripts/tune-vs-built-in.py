#!/usr/bin/env python3
"""AUTO's slowdown over the best path on `panorm tune --verbose` measurements, per kind, for the built-in
model and for each run's tuned one (so run A's choices are also judged on run B's measurements).

Usage: scripts/tune-vs-built-in.py [--amd|--amd-zen4] RUN.txt [RUN.txt ...]   (each the stdout of `panorm tune
--verbose`; --amd: the built-in model for AMD CPUs whose second thread costs more, OneDnnKernel.COSTLY_SECOND_THREAD,
with AVX-512 as on Zen 5; --amd-zen4: the one for AMD's Zen 4, Intel's but backward for the input only in Java)

Routes as AutoKernel does: Java up to the first crossover (on rows of WIDE_ROWS or more, up to the wide rows' one)
and from the second on, a single row in Java whenever the first is not 0 (half-precision forward kinds aside), oneDNN
on all cores from its thread crossover on (a forward call on one row on one thread); "best" is the fastest of Java,
oneDNN on one thread and oneDNN on all cores, as tune measures them.
"""
import re
import sys

NEVER = 1 << 62
WIDE_ROWS = 2048  # AutoProfile.WIDE_ROWS
# AutoModel's built-in crossovers (first, second), OneDnnKernel's thread crossovers and the wide rows' first
# crossover, per kind tune measures.
BUILT_IN = {}
for t in ("f32", "bf16", "f16"):
    half = t != "f32"
    BUILT_IN[f"{t}.forward"] = (24576 if half else 32768, NEVER, 24576 if half else 32768)
    BUILT_IN[f"{t}.forward_global"] = (12288 if half else 49152, NEVER, 32768)
    BUILT_IN[f"{t}.backward"] = (65536 if half else 98304, NEVER, 32768)
    BUILT_IN[f"{t}.backward_data"] = (65536 if half else 98304, NEVER if half else 1 << 20, 32768)
for kind, (first, second, threads) in list(BUILT_IN.items()):
    BUILT_IN[kind] = (first, second, threads, first)
# OneDnnKernel.singleThreadBelow on AMD CPUs: oneDNN's second thread from these sizes instead.
AMD_THREADS = {"forward": 3 << 15, "forward_global": 1 << 17, "backward": 3 << 15, "backward_data": 3 << 15}

SUMMARY = re.compile(r"(\w+\.\w+)\s+Java up to (\d+) elements per call(?: \(on rows of \d+ or more up to (\d+)\))?,"
                     r" oneDNN above(?:, Java again from (\d+))?; oneDNN (?:on all cores from (\d+) elements|on one thread)")


def load(path):
    points, tuned = [], {}
    try:
        with open(path) as file:
            lines = file.readlines()
    except (OSError, UnicodeDecodeError) as e:
        sys.exit(f"tune-vs-built-in: cannot read {path}: {e}")
    for line in lines:
        fields = line.split()
        if len(fields) >= 7 and fields[0] in ("inference", "training", "global", "backward", "backward_data"):
            rows, c = map(int, fields[2].split("x"))
            points.append((fields[1], rows, c, float(fields[3]), float(fields[4]), float(fields[5])))
        match = SUMMARY.match(line)
        if match:
            first, wide, second, threads = match.group(2), match.group(3), match.group(4), match.group(5)
            tuned[match.group(1)] = (int(first), int(second) if second else NEVER, int(threads) if threads else NEVER,
                                     int(wide) if wide else int(first))
    return points, tuned


def slowdown(points, kind, choice):
    narrow, second, threads, wide = choice
    half_forward = not kind.startswith("f32.") and "backward" not in kind
    ratios = []
    for k, rows, c, java, one, every in points:
        if k != kind:
            continue
        first = wide if c >= WIDE_ROWS else narrow
        elements = rows * c
        in_java = elements <= first or elements >= second or (first > 0 and rows == 1 and not half_forward)
        all_cores = elements >= threads and not (rows == 1 and "backward" not in kind)
        ratios.append((java if in_java else every if all_cores else one) / min(java, one, every))
    return sum(ratios) / len(ratios), max(ratios)


def main(paths):
    if paths and paths[0] == "--amd-zen4":
        paths = paths[1:]
        for kind in [k for k in BUILT_IN if k.endswith(".backward_data")]:
            BUILT_IN[kind] = (NEVER, NEVER, BUILT_IN[kind][2], NEVER)
    if paths and paths[0] == "--amd":
        paths = paths[1:]
        for kind, (first, second, _, wide) in list(BUILT_IN.items()):
            name = kind.split(".")[1]
            half_global = not kind.startswith("f32.") and name == "forward_global"
            half_backward = not kind.startswith("f32.") and name.startswith("backward")
            threads = 1 << 18 if half_global else 1 << 17 if half_backward else AMD_THREADS[name]
            BUILT_IN[kind] = (first, second, threads, wide)
        # AutoModel's Java crossovers for AMD CPUs (NEVER as the first: always Java)
        BUILT_IN["f32.backward"] = (1 << 17, NEVER, BUILT_IN["f32.backward"][2], 1 << 17)
        BUILT_IN["f32.backward_data"] = (NEVER, NEVER, BUILT_IN["f32.backward_data"][2], NEVER)
        for t in ("bf16", "f16"):
            BUILT_IN[f"{t}.backward"] = (1 << 17, NEVER, BUILT_IN[f"{t}.backward"][2], 1 << 17)
            BUILT_IN[f"{t}.backward_data"] = (NEVER, NEVER, BUILT_IN[f"{t}.backward_data"][2], NEVER)
        BUILT_IN["bf16.forward"] = (3 << 14, NEVER, BUILT_IN["bf16.forward"][2], 3 << 14)
        BUILT_IN["bf16.forward_global"] = (3 << 13, NEVER, BUILT_IN["bf16.forward_global"][2], 3 << 13)
        # wide rows (AutoProfile.WIDE_ROWS and more)
        BUILT_IN["f32.forward"] = BUILT_IN["f32.forward"][:3] + ((3 << 15) - 1,)
        BUILT_IN["f32.forward_global"] = BUILT_IN["f32.forward_global"][:3] + ((1 << 17) - 1,)
    runs = {path: load(path) for path in dict.fromkeys(paths)}  # a file given twice counts once
    if not any(points for points, _ in runs.values()):
        sys.exit("tune-vs-built-in: no measurements in " + ", ".join(runs) + " (the stdout of `panorm tune --verbose`)")
    print("| measured in | kind | built-in: mean, worst | " + " | ".join(
        f"tuned in {path}: mean, worst" for path in runs) + " |")
    print("|---" * (3 + len(runs)) + "|")
    for path, (points, _) in runs.items():
        for kind in sorted({p[0] for p in points}, key=lambda k: list(BUILT_IN).index(k)):
            cells = ["%.3f, %.2f" % slowdown(points, kind, BUILT_IN[kind])]
            for _, (_, tuned) in runs.items():
                cells.append("%.3f, %.2f" % slowdown(points, kind, tuned[kind]) if kind in tuned else "-")
            print(f"| {path} | {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    if not [arg for arg in sys.argv[1:] if arg not in ("--amd", "--amd-zen4")]:
        sys.exit("usage: scripts/tune-vs-built-in.py [--amd|--amd-zen4] RUN.txt [RUN.txt ...]")
    main(sys.argv[1:])
