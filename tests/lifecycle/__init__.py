"""Process lifecycle: every way a service is stopped, and exit with the collector down."""
