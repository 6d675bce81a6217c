"""The log layer: runs become ECS JSON lines, written to the file by a background writer."""
