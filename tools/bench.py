"""instacolor benchmarks: one subcommand per benchmark, each printing its numbers.

    python tools/bench.py --help                 # the benchmarks, one line each
    python tools/bench.py SUBCOMMAND --help      # one benchmark's options
    python tools/bench.py pipeline --quick > /tmp/bench.md

The benchmarks live in ``tools/benchmarks/`` (one module per subcommand); only the chosen
one is imported. Not tests: they measure this machine and print Markdown or plain lines.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# ``python tools/bench.py`` puts tools/ first on sys.path, so ``benchmarks`` is importable.
from benchmarks import SUBCOMMANDS


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the docstrings' layout; the help column leaves room for "review-load"."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog)
        # argparse measures subcommand names at a smaller indent than it prints them at
        self._action_max_length = max(self._action_max_length, 17)


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """The parser with every subcommand listed; only ``chosen`` gets its options."""
    parser = argparse.ArgumentParser(
        prog="tools/bench.py", description=__doc__, formatter_class=Formatter
    )
    subparsers = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name, (module_name, summary) in SUBCOMMANDS.items():
        if name != chosen:
            subparsers.add_parser(name, help=summary)
            continue
        module = importlib.import_module(f"benchmarks.{module_name}")
        sub = subparsers.add_parser(
            name, help=summary, description=module.__doc__, formatter_class=Formatter
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the chosen benchmark."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(chosen if chosen in SUBCOMMANDS else None).parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
