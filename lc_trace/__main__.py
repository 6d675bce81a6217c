"""``python -m lc_trace`` is the ``lc-trace`` command."""

from lc_trace._cli import main

raise SystemExit(main())
