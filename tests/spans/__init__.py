"""The span layer: both span paths (finished spans and the API), and that they export the same."""
