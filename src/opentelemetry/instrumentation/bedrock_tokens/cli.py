"""The ``bedrock-tokens`` command line.

One argparse sub-command per task. To add one, write ``_add_<name>(subparsers)`` registering
its parser with ``set_defaults(handler=_cmd_<name>)`` and a ``_cmd_<name>(args) -> int``, then
append ``_add_<name>`` to ``_SUBCOMMANDS``. Handlers import what they need lazily, so
``bedrock-tokens --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

__all__ = ["build_parser", "main"]

_DEFAULT_EMULATOR_PORT = 8765


# ---------------------------------------------------------------------------- emulator


def _add_emulator(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local Bedrock Runtime emulator until interrupted",
        description=(
            "Serve InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream and "
            "CountTokens locally with deterministic token counts, for tests and demos."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1, loopback only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=_DEFAULT_EMULATOR_PORT,
        help=f"port to bind; 0 picks a free one (default: {_DEFAULT_EMULATOR_PORT})",
    )
    parser.add_argument(
        "--scenario",
        metavar="JSON",
        help="default scenario for every request, e.g. '{\"float_counts\": true}'",
    )
    parser.add_argument(
        "--scenario-headers",
        action="store_true",
        help="let clients pick a scenario per request with the x-bedrock-emulator-scenario "
        "header (delays, errors); off by default",
    )
    parser.add_argument(
        "--connection-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="close connections silent for this long (default: 60)",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.set_defaults(handler=_cmd_emulator)


def _usage_hint(endpoint_url: str) -> str:
    return f"""Bedrock Runtime emulator listening on {endpoint_url}

Point boto3 at it:

    import boto3
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url="{endpoint_url}",
        region_name="us-east-1",
        aws_access_key_id="emulator",
        aws_secret_access_key="emulator",
    )

or, for code you cannot change: AWS_ENDPOINT_URL_BEDROCK_RUNTIME={endpoint_url}
Press Ctrl+C to stop."""


def _cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator import BedrockEmulator, Scenario

    scenario = None
    if args.scenario:
        try:
            scenario = Scenario.from_json(args.scenario)
        except ValueError as exc:
            print(f"bedrock-tokens emulator: --scenario: {exc}", file=sys.stderr)
            return 2
    from .emulator.server import is_loopback_host

    if args.connection_timeout <= 0:
        print("bedrock-tokens emulator: --connection-timeout must be positive", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host):
        print(
            f"bedrock-tokens emulator: warning: {args.host} is not a loopback address; "
            "anything that can reach this port can use the emulator (no credentials are "
            "checked). It is meant for tests and demos on one machine.",
            file=sys.stderr,
        )
    emulator = BedrockEmulator(
        host=args.host,
        port=args.port,
        verbose=args.verbose,
        scenario_headers=args.scenario_headers,
        connection_timeout=args.connection_timeout,
    )
    with _sigterm_as_interrupt():
        try:
            try:
                emulator.start()
            except OSError as exc:
                where = f"{args.host}:{args.port}"
                print(f"bedrock-tokens emulator: cannot bind {where}: {exc}", file=sys.stderr)
                return 1
            if scenario is not None:
                emulator.set_scenario(scenario)
            print(_usage_hint(emulator.endpoint_url), flush=True)
            emulator.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            emulator.stop()
    print("Bedrock Runtime emulator stopped.", flush=True)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While serving, make SIGTERM end the loop like Ctrl+C so the port is released cleanly.

    The previous handler comes back afterwards: ``main`` may run inside another program.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- entry point

def _add_demo(subparsers: Any) -> None:
    from .demo import add_arguments

    parser = subparsers.add_parser(
        "demo",
        help="run a sample boto3 app under opentelemetry-instrument and show what was recorded",
        description="Run a sample boto3 app under opentelemetry-instrument against the built-in "
        "emulator (or real Bedrock) and show the spans and metrics it produced.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_cmd_demo)


# What the demo imports beyond the package itself: (module, distribution).
_DEMO_NEEDS = (("boto3", "boto3"), ("opentelemetry.sdk", "opentelemetry-sdk"),
               ("opentelemetry.distro", "opentelemetry-distro"))


def missing_for_demo() -> list[str]:
    """Distributions the demo needs that are not installed."""
    import importlib.util

    missing = []
    for module, dist in _DEMO_NEEDS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(dist)
    return missing


def _cmd_demo(args: argparse.Namespace) -> int:
    missing = missing_for_demo()
    if missing:
        print(f"bedrock-tokens demo needs {', '.join(missing)}: "
              'pip install "opentelemetry-instrumentation-bedrock-tokens[demo]"', file=sys.stderr)
        return 1
    from .demo import run

    return run(args)


def _add_doctor(subparsers: Any) -> None:
    from .doctor import add_arguments

    parser = subparsers.add_parser(
        "doctor",
        help="explain why no tokens are recorded: versions, instrumentors, conflicts, settings",
        description="Check versions, the instrumentors a launched process loads, conflicts, "
        "settings and exporters; optionally make a real CountTokens call.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=_cmd_doctor)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run

    return run(args)


_SUBCOMMANDS: list[Callable[[Any], None]] = [_add_emulator, _add_demo, _add_doctor]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bedrock-tokens",
        description="Tools of opentelemetry-instrumentation-bedrock-tokens.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
