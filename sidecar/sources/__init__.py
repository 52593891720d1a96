"""Where lines come from: files and stdin (pipe), later syslog and followed files (serve)."""
