"""`sidecar proxy`: a scrubbing reverse proxy in front of one origin, on mitmproxy.

    client ──▶ mitmproxy (embedded master, a reverse proxy's addons only) ──▶ origin
                 └─ addon.Sidecar: refuse what is not for the origin (guard), answer beacons
                    (beacons), scrub the request toward the origin (privacy.headers), and make
                    one clean record per exchange (exchange) ──▶ App.emit ──▶ the sinks

- `exchange`: the raw request made from a flow (a sibling of the log parsers), finished with
  the response's status, bytes and time.
- `guard`: what the proxy refuses itself (absolute-form requests for another host).
- `beacons`: the answer to a beacon request (204, 405, 413) and its body as text.
- `addon`: the mitmproxy addon tying these to the App; its hooks never block.
- `eventlog`: mitmproxy's own log records, struck and counted, into sidecar's self-log.
- `master`: the embedded mitmproxy master, its options from the config, and the run
  (signals, /metrics, --stats).

mitmproxy is the `[proxy]` extra (`pip install 'privacy-sidecar[proxy]'`): only the modules
here import it, and only `sidecar proxy` imports them.
"""
