"""The ``lc-trace`` command: reads through the read side, writes the demo through the public API."""

from __future__ import annotations

import os
import sys

from lc_trace._cli._commands import CliError
from lc_trace._cli._parser import build_parser
from lc_trace._read._files import LogReadError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """
    The ``lc-trace`` command; returns the exit code.

    Exit codes: 0 done; 1 the log was read but has no (unique) trace by that id, or an export
    had spans refused; 2 a usage error, or a log file that is missing or cannot be read or written.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors; return instead
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"lc-trace: {exc}", file=sys.stderr)
        return exc.code
    except LogReadError as exc:
        print(f"lc-trace: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `lc-trace traces | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
