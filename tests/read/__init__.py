"""The read side: log files back into runs and traces; show, tail, usage, export, the HTML page."""
