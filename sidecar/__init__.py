"""sidecar: a privacy gateway for video CDN analytics."""

__version__ = "0.1.0"
