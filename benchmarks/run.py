"""Benchmark ours against the floor and the peers; write BENCHMARKS.md.

    python benchmarks/run.py            # full run, about 14 minutes on 2 cores
    python benchmarks/run.py --quick    # about 3 minutes, fewer rounds and shorter streams

Any Python >= 3.9 can start it. The first time, it creates ``benchmarks/.venv-peers`` with
this package (editable), the SDK and the peers pinned in ``requirements-peers.txt``, then
re-runs itself with that interpreter, so every configuration runs with the same botocore and
SDK versions and no peer is ever installed into the project's own venv. If the venv cannot be
built, the peers are reported as unavailable and the rest runs with the current interpreter.

Every configuration runs in its own worker process (``worker.py``); rounds are interleaved
(configuration order rotates each round) so slow drift on a shared machine hits all of them
alike. Timings are stored as pyperf suites in ``benchmarks/results/<config>.json``
(``python -m pyperf compare_to benchmarks/results/uninstrumented.json
benchmarks/results/ours.json``), everything else in ``benchmarks/results/run.json``, from which
``--report-only`` rewrites BENCHMARKS.md without measuring again.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv-peers"
REQUIREMENTS = HERE / "requirements-peers.txt"
RESULTS = HERE / "results"
_STAMP = ".bench-stamp"
_IN_VENV_ENV = "BEDROCK_TOKENS_BENCH_REEXEC"


# -- the benchmark venv ---------------------------------------------------------------------------
def _venv_python() -> Path:
    return VENV / "bin" / "python"


def _stamp() -> str:
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_venv(log: Any) -> Optional[str]:
    """Create or refresh the benchmark venv; None when it is ready, else why it is not."""
    stamp = VENV / _STAMP
    if stamp.exists() and stamp.read_text() == _stamp() and _venv_python().exists():
        return None
    log(f"setting up {VENV.relative_to(ROOT)} (once; pip output in {VENV.name}/pip.log) ...")
    try:
        if not _venv_python().exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        with open(VENV / "pip.log", "w") as pip_log:
            done = subprocess.run(
                [str(_venv_python()), "-m", "pip", "install", "--disable-pip-version-check",
                 "-r", str(REQUIREMENTS), "-e", f"{ROOT}[test]"],
                stdout=pip_log, stderr=subprocess.STDOUT,
            )
        if done.returncode != 0:
            tail = (VENV / "pip.log").read_text().strip().splitlines()[-3:]
            return "pip install failed: " + " / ".join(tail)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not create the venv: {exc}"
    stamp.write_text(_stamp())
    return None


# -- the plan -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """How much to measure. Rounds interleave every configuration once per round."""

    mode: str
    rounds: int  # in-process calls and short/medium streams
    values: int  # timed values per workload per process
    target: float  # seconds per timed value
    medium_events: int  # slope base: short -> medium
    long_events: tuple[int, ...]  # measured in "long" rounds
    long_rounds: int
    longest_events: Optional[int]  # measured once
    memory_events: int
    loopback_rounds: int
    precount_rounds: int
    precount_delay: float = 0.010  # CountTokens latency given to the emulator, seconds


FULL = Plan("full", rounds=5, values=8, target=0.03, medium_events=1000,
            long_events=(10_000, 100_000), long_rounds=1, longest_events=300_000,
            memory_events=100_000, loopback_rounds=3, precount_rounds=3)
QUICK = Plan("quick", rounds=2, values=5, target=0.02, medium_events=1000,
             long_events=(10_000,), long_rounds=1, longest_events=None,
             memory_events=20_000, loopback_rounds=1, precount_rounds=1)


# -- results --------------------------------------------------------------------------------------
@dataclass
class Results:
    meta: dict[str, Any] = field(default_factory=dict)
    # config -> benchmark name -> round -> values (seconds per call)
    timings: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    memory: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # config -> stream workload -> round -> CPU seconds per segment of events
    segments: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    probe: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        return cls(**data)


class Runner:
    """Starts workers, collects what they write, keeps the pyperf suites."""

    def __init__(self, plan: Plan, log: Any) -> None:
        self.plan = plan
        self.log = log
        self.results = Results()
        self.suites: dict[str, Any] = {}
        self.endpoint: Optional[str] = None
        self._tmp = Path(tempfile.mkdtemp(prefix="bedrock-tokens-bench-"))
        self._n = 0

    def worker(self, config: str, task: str, workloads: Sequence[str], round_: int,
               values: Optional[int] = None, target: Optional[float] = None,
               extra: Sequence[str] = ()) -> Optional[dict[str, Any]]:
        import pyperf

        self._n += 1
        out, suite = self._tmp / f"{self._n}.out.json", self._tmp / f"{self._n}.suite.json"
        cmd = [sys.executable, str(HERE / "worker.py"), "--config", config, "--task", task,
               "--workloads", ",".join(workloads), "--out", str(out), "--suite", str(suite),
               "--values", str(values or self.plan.values),
               "--target", str(target or self.plan.target), *extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not out.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            self.results.failures.append(f"{config} {task} round {round_}: {tail}")
            self.log(f"  ! {config} {task} failed: {tail}")
            return None
        data: dict[str, Any] = json.loads(out.read_text())
        if suite.exists():
            loaded = pyperf.BenchmarkSuite.load(str(suite))
            if config in self.suites:
                self.suites[config].add_runs(loaded)
            else:
                self.suites[config] = loaded
            per = self.results.timings.setdefault(config, {})
            for bench in loaded:
                per.setdefault(bench.get_name(), {})[str(round_)] = list(bench.get_values())
        for key, marks in data.get("segments", {}).items():
            self.results.segments.setdefault(config, {}).setdefault(key, {})[str(round_)] = marks
        return data

    def save(self) -> None:
        RESULTS.mkdir(exist_ok=True)
        for config, suite in self.suites.items():
            suite.dump(str(RESULTS / f"{config}.json"), replace=True)
        (RESULTS / "run.json").write_text(json.dumps(self.results.to_json(), indent=1))
        shutil.rmtree(self._tmp, ignore_errors=True)


def _rotate(items: Sequence[str], k: int) -> list[str]:
    k %= max(len(items), 1)
    return list(items[k:]) + list(items[:k])


# -- metadata ------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from importlib import metadata

    names = ("botocore", "boto3", "opentelemetry-api", "opentelemetry-sdk",
             "opentelemetry-instrumentation", "opentelemetry-instrumentation-bedrock-tokens",
             "opentelemetry-instrumentation-botocore",
             "opentelemetry-instrumentation-genai-bedrock", "opentelemetry-util-genai",
             "opentelemetry-instrumentation-bedrock", "wrapt", "pyperf")
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# -- the run -------------------------------------------------------------------------------------
def _emulator_reason() -> Optional[str]:
    try:
        from opentelemetry.instrumentation.bedrock_tokens.emulator import (  # noqa: F401
            SCENARIO_HEADER,
            BedrockEmulator,
            Scenario,
        )
    except Exception as exc:
        return f"the emulator is not importable ({type(exc).__name__}: {exc})"
    return None


def start_emulator() -> tuple[Optional[subprocess.Popen[str]], Optional[str]]:
    proc = subprocess.Popen([sys.executable, str(HERE / "loopback.py"), "serve"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    try:
        return proc, str(json.loads(line)["endpoint"])
    except (ValueError, KeyError):
        proc.kill()
        return None, None


def run(plan: Plan, only: Optional[set[str]], skip: set[str], log: Any,
        setup_problem: Optional[str]) -> Results:
    import canned
    import configs
    import loopback

    runner = Runner(plan, log)
    res = runner.results
    res.meta = {"plan": plan.__dict__, "machine": _machine(), "versions": _versions(),
                "load_start": _loadavg(), "started": time.strftime("%Y-%m-%d %H:%M %Z"),
                "setup_problem": setup_problem}
    t_start = time.perf_counter()

    # Which configurations can run here.
    names = []
    for config in configs.CONFIGS:
        if only and config.name not in only:
            continue
        missing = config.missing()
        if missing:
            why = f"not importable: {', '.join(missing)}"
            if setup_problem and config.peer:
                why += f" ({setup_problem})"
            res.unavailable[config.name] = why
            continue
        names.append(config.name)
    precount = [c.name for c in configs.PRECOUNT_CONFIGS if not (only and c.name not in only)]
    precount_missing = configs.BY_NAME[configs.PRECOUNT_CONFIGS[0].name].missing()
    if precount_missing:
        for name in precount:
            res.unavailable[name] = f"not importable: {', '.join(precount_missing)}"
        precount = []

    short = {op: canned.SHORT_EVENTS[op] for op in canned.STREAM_OPERATIONS}
    streams = [canned.stream_workload(op, n).key for op in canned.STREAM_OPERATIONS
               for n in (short[op], plan.medium_events)]
    calls = [w.key for w in canned.NON_STREAMED] + streams
    # aiobotocore: the same workloads awaited (streams at the short and the medium length).
    aio: list[canned.Workload] = []
    if importlib.util.find_spec("aiobotocore") is not None:
        aio = list(canned.aio_workloads(short, plan.medium_events))
    else:
        res.notes.append("aiobotocore workloads not measured: aiobotocore is not installed.")
    calls += [w.key for w in aio]
    res.meta["short_events"] = short
    res.meta["titles"] = {w.key: w.title for w in canned.NON_STREAMED}
    res.meta["titles"].update({w.key: w.title for w in loopback.WORKLOADS})
    res.meta["titles"].update({w.key: w.title for w in aio if not w.streamed})
    res.meta["configs"] = {c.name: c.title for c in configs.CONFIGS + configs.PRECOUNT_CONFIGS}
    res.meta["peers"] = [c.name for c in configs.CONFIGS if c.peer]

    def only_for(name: str, keys: Sequence[str]) -> list[str]:
        """A streams-only configuration runs the stream workloads alone; one that does not
        instrument aiobotocore skips its workloads."""
        config = configs.BY_NAME[name]
        return [k for k in keys if (not config.streams_only or "stream" in k)
                and (config.aio or not k.startswith(canned.AIO_PREFIX))]

    # 1. What each configuration records (and whether it runs at all).
    log("probe: what each configuration records")
    probe_keys = [w.key for w in canned.NON_STREAMED] + [
        canned.stream_workload(op, short[op]).key for op in canned.STREAM_OPERATIONS] + [
        w.key for w in aio if w.events in (0, *short.values())]
    for name in list(names):
        data = runner.worker(name, "probe", only_for(name, probe_keys), 0)
        if data is None:
            res.unavailable[name] = "the worker failed (see failures)"
            names.remove(name)
        else:
            res.probe[name] = data["probe"]

    def progress(what: str) -> None:
        log(f"[{time.perf_counter() - t_start:6.0f} s, load {_loadavg()}] {what}")

    # 2. In-process calls and short/medium streams, interleaved rounds.
    if "calls" not in skip:
        for r in range(plan.rounds):
            progress(f"calls, round {r + 1}/{plan.rounds}")
            for name in _rotate(names, r):
                runner.worker(name, "calls", only_for(name, calls), r)

    # 3. Long streams: fewer rounds, one value each.
    if "long" not in skip:
        for r in range(plan.long_rounds):
            lengths = list(plan.long_events)
            if r == 0 and plan.longest_events:
                lengths.append(plan.longest_events)
            keys = [canned.stream_workload(op, n).key for n in lengths
                    for op in canned.STREAM_OPERATIONS]
            progress(f"long streams {lengths}, round {r + 1}/{plan.long_rounds}")
            for name in _rotate(names, r):
                runner.worker(name, "calls", keys, 100 + r, values=1, target=0.001)

    # 4. Memory over one long stream per operation.
    if "memory" not in skip:
        progress(f"memory, {plan.memory_events:,}-event streams")
        keys = [canned.stream_workload(op, plan.memory_events).key
                for op in canned.STREAM_OPERATIONS]
        for name in names:
            data = runner.worker(name, "memory", keys, 0)
            if data is not None:
                res.memory[name] = data["memory"]
        res.meta["memory_events"] = plan.memory_events
    res.meta["segment"] = 1000

    # 5. Over loopback, against the emulator in its own process.
    emulator_problem = _emulator_reason()
    wants_loopback = not {"loopback", "precount"} <= skip
    proc = None
    if emulator_problem is None and wants_loopback:
        proc, runner.endpoint = start_emulator()
        if runner.endpoint is None:
            emulator_problem = "the emulator did not start"
    if emulator_problem is not None:
        res.notes.append(f"Loopback and pre-count workloads not measured: {emulator_problem}.")
    elif runner.endpoint is not None:
        endpoint = ["--endpoint", runner.endpoint,
                    "--precount-delay", str(plan.precount_delay)]
        try:
            lb_keys = [w.key for w in loopback.WORKLOADS if not w.precount]
            if "loopback" not in skip:
                for r in range(plan.loopback_rounds):
                    progress(f"loopback, round {r + 1}/{plan.loopback_rounds}")
                    for name in _rotate(names, r):
                        runner.worker(name, "loopback", only_for(name, lb_keys), r,
                                      extra=endpoint)
            if "precount" not in skip:
                base = [n for n in ("uninstrumented", "ours") if n in names]
                if not precount:
                    res.notes.append(
                        "Pre-count workloads not measured: "
                        + res.unavailable.get(configs.PRECOUNT_CONFIGS[0].name, "skipped") + ".")
                for r in range(plan.precount_rounds if precount else 0):
                    progress(f"pre-count, round {r + 1}/{plan.precount_rounds}")
                    for name in _rotate(base + precount, r):
                        keys = ["lb_precount_invoke"]
                        if name == "uninstrumented":
                            keys.append("lb_precount_count_tokens")
                        runner.worker(name, "loopback", keys, r, values=6, target=0.15,
                                      extra=endpoint)
                res.meta["precount_delay"] = plan.precount_delay
                res.meta["invoke_delay"] = loopback.INVOKE_DELAY
        finally:
            if proc is not None and proc.stdin is not None:
                proc.stdin.close()
                proc.wait(10)

    res.meta["load_end"] = _loadavg()
    res.meta["seconds"] = round(time.perf_counter() - t_start)
    runner.save()
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, shorter streams")
    ap.add_argument("--rounds", type=int, help="override the number of interleaved rounds")
    ap.add_argument("--configs", help="comma-separated configuration names (default: all)")
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: calls,long,memory,loopback,precount")
    ap.add_argument("--no-setup", action="store_true",
                    help="use the current interpreter; do not create benchmarks/.venv-peers")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from benchmarks/results/run.json")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = ap.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    setup_problem = os.environ.get(_IN_VENV_ENV) or None
    wants_venv = not (args.no_setup or args.report_only or _IN_VENV_ENV in os.environ)
    if wants_venv and Path(sys.prefix).resolve() != VENV.resolve():
        setup_problem = ensure_venv(log)
        if setup_problem is None:
            env = dict(os.environ, **{_IN_VENV_ENV: ""})
            python = str(_venv_python())
            os.execve(python, [python, str(Path(__file__).resolve()), *(argv or sys.argv[1:])],
                      env)
        log(f"peers unavailable: {setup_problem}; running with {sys.executable}")
        os.environ[_IN_VENV_ENV] = setup_problem

    import report  # needs nothing outside the standard library

    if args.report_only:
        results = Results.from_json(json.loads((RESULTS / "run.json").read_text()))
    else:
        try:
            import pyperf  # noqa: F401
        except ImportError:
            log("pyperf is missing: pip install pyperf (or let run.py build its venv)")
            return 2
        plan = QUICK if args.quick else FULL
        if args.rounds:
            plan = Plan(**{**plan.__dict__, "rounds": args.rounds})
        only = set(args.configs.split(",")) if args.configs else None
        skip = {s for s in args.skip.split(",") if s}
        results = run(plan, only, skip, log, setup_problem)
    Path(args.output).write_text(report.render(results))
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
