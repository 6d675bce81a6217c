"""The process's life: flushing everything lc_trace holds, however the process is stopped."""
