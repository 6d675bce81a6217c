"""The capture side: the handlers, the event mapping, content, metrics, context and configure()."""
