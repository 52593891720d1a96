"""Access-log formats: parsers from text lines to RawRequest, and writers back to the same format.

Parsing knows nothing of policy: nothing here imports privacy/, sinks/ or sources/.
"""
