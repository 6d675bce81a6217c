"""End to end with the real stack programs (tests/stack), the deploy/ configs, and the stack machinery itself."""
