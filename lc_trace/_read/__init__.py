"""The read side: log files become runs and traces, filtered, summed, exported, drawn and printed."""
