"""The log layer: the lines, their schema, the background writer and the file under real faults."""
