"""The lc-trace command."""
