"""Per-call overhead with a price table and two attribution keys, next to without.

    python benchmarks/cost_overhead.py             # 6 interleaved rounds, about 2 minutes
    python benchmarks/cost_overhead.py --rounds 3

Runs ``worker.py`` (task ``calls``, in-process canned responses) for ``uninstrumented``,
``ours`` and ``ours+cost`` (configs.COST_OPTIONS: a price table and
``request_metadata_keys=tenant,feature``; every canned request carries that
``requestMetadata``, so the configurations differ only by what they are told to record). Rounds
are interleaved, each configuration in its own process. Prints, per workload, the median CPU
time per call, the overhead over uninstrumented, and how much larger the overhead is with cost
and attribution on (the issue's budget: 10%). A probe first checks that ``ours+cost`` really
records the cost metric, so a cheap figure cannot come from doing nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = ("uninstrumented", "ours", "ours+cost")
WORKLOADS = ("invoke_headers", "invoke_body", "converse", "converse_stream@24",
             "invoke_stream@21")


def _worker(config: str, task: str, out: Path, suite: Path | None, values: int,
            workloads: tuple[str, ...] = WORKLOADS) -> None:
    cmd = [sys.executable, str(HERE / "worker.py"), "--config", config, "--task", task,
           "--workloads", ",".join(workloads), "--out", str(out), "--values", str(values),
           "--target", "0.05"]
    if suite is not None:
        cmd += ["--suite", str(suite)]
    subprocess.run(cmd, check=True, cwd=HERE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--values", type=int, default=5)
    args = ap.parse_args()
    import pyperf

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for key in WORKLOADS:  # one process each: a counter's point count does not grow
            probe = work / f"probe-{key}.json"
            _worker("ours+cost", "probe", probe, None, 1, (key,))
            found = json.loads(probe.read_text())["probe"][key]["points"]
            if "aws.bedrock.usage.cost" not in found:
                print(f"ours+cost recorded no cost for {key}: {found}", file=sys.stderr)
                return 1
        medians: dict[tuple[str, str], list[float]] = {}
        for n in range(args.rounds):
            order = CONFIGS[n % 3:] + CONFIGS[:n % 3]
            for config in order:
                suite = work / f"{config}-{n}.json"
                _worker(config, "calls", work / f"{config}-{n}.out", suite, args.values)
                loaded = pyperf.BenchmarkSuite.load(str(suite))
                for key in WORKLOADS:
                    values = loaded.get_benchmark(key).get_values()
                    medians.setdefault((config, key), []).append(statistics.median(values))
            print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{'workload':<22}{'uninstr. us':>12}{'ours +us':>10}{'cost +us':>10}"
          f"{'ratio':>8}")
    ratios = []
    for key in WORKLOADS:
        base, ours, cost = (statistics.median(medians[(c, key)]) * 1e6 for c in CONFIGS)
        ratio = (cost - base) / (ours - base)
        ratios.append(ratio)
        print(f"{key:<22}{base:>12.1f}{ours - base:>10.1f}{cost - base:>10.1f}{ratio:>8.3f}")
    print(f"median ratio of overheads (cost on / off): {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
