"""
The real programs the deploy/ stack runs, installed and started here without Docker.

Each part is built or downloaded once per version into a cache outside the repository
(``~/.cache/lc_trace/stack/<name>-<version>``, or ``$LC_TRACE_STACK_CACHE``) and started on
loopback ports by the tests. ``python -m tests.stack install`` installs everything up front;
the fixtures install on demand, so ``pytest`` alone works on a fresh machine too.
"""
