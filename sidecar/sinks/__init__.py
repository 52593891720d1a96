"""Where clean records go. Sinks import only record.py, config.py, metrics.py and libraries:
they see clean records, never raw ones."""
