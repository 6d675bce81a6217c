"""
lc_trace's benchmark: per-event overhead against floors and peers, the writer, and memory.

Run ``python -m bench`` (see ``bench/__main__.py`` and ``BENCHMARKS.md``). Not part of the
test suite: it takes minutes and its figures depend on the machine.
"""
