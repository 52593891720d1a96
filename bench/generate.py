"""Deterministic generator of video-CDN nginx access logs in the combined format.

    python bench/generate.py --lines 1000000 [--seed 1] > access.log

A handful of viewing sessions run at once and their requests are interleaved in time order, as
an edge server writes them: a watch page now and then, the HLS master playlist, a variant
playlist, `init.mp4`, `seg_N.m4s` segments every few seconds (sometimes with `?token=` and CMCD
query strings), rendition switches, player beacons (`POST /beacon?...`), and the odd 206, 304,
404 and 499. Live sessions re-fetch their playlist with every segment. Bots and scripts make a
few requests each.

Client addresses are drawn inside the country ranges of Debian's tor-geoipdb (the same source
as sidecar's country database), so most of them have a country: about 70% IPv4, 25% IPv6 and
a few percent IPv4-mapped (`::ffff:a.b.c.d`). IPv6 addresses are written with all eight groups,
none of them zero and without leading zeros, so that keeping the first three groups and adding
`::` is exactly Python's compressed form of the /48: text-only maskers (syslog-ng's `subst()`)
can then be compared with sidecar field by field. Timestamps carry a +0100 offset.
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import random
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from itertools import accumulate
from pathlib import Path

TOR_GEOIP = Path("/usr/share/tor/geoip")
TOR_GEOIP6 = Path("/usr/share/tor/geoip6")

SITE = "https://www.example-video.eu"
START_UTC = 1795507200  # 2026-11-24T08:00:00Z
OFFSET_SECONDS = 3600
OFFSET_TEXT = "+0100"
CONCURRENT_SESSIONS = 40  # with a request every ~3 s per session: ~10-15 lines per second
SEGMENT_SECONDS = 4.0

# Where the viewers of a European video service are (weights); "*" is any range anywhere,
# weighted by size, which brings in the rest of the world and a few addresses with no country.
COUNTRY_WEIGHTS: dict[str, float] = {
    "DE": 22, "FR": 14, "GB": 10, "NL": 6, "IT": 6, "ES": 6, "PL": 5, "BE": 3, "AT": 3,
    "CH": 3, "SE": 2, "DK": 1.5, "CZ": 1.5, "PT": 1.5, "IE": 1, "FI": 1, "NO": 1, "US": 6,
    "CA": 1, "*": 5,
}  # fmt: skip

RENDITIONS = (("1080p", 5000), ("720p", 2800), ("480p", 1400), ("360p", 800), ("240p", 400))

# (user agent, kind, weight). Kinds: browser (watch page, referrer, beacons), app (native
# player, no referrer), tv (no referrer, long sessions), bot (a few requests).
USER_AGENTS: tuple[tuple[str, str, float], ...] = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "browser", 14),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "browser", 5),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36", "browser", 1.5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "browser", 5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "browser", 4),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0",
     "browser", 1),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "browser", 1),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
     "browser", 1),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/18.1 Safari/605.1.15", "browser", 4),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0", "browser", 1),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Safari/537.36", "browser", 1),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "browser", 9),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", "browser", 3),
    ("Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.6 Mobile/15E148 Safari/604.1", "browser", 2),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1", "browser", 1.5),
    ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/131.0.0.0 Mobile Safari/537.36", "browser", 10),
    ("Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "browser", 2.5),
    ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", "browser", 1),
    ("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/130.0.0.0 Safari/537.36", "browser", 1.5),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.36.109;FBBV/634519741;"
     "FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/de_DE;"
     "FBOP/80]", "browser", 1),
    ("AppleCoreMedia/1.0.0.22B83 (iPhone; U; CPU OS 18_1 like Mac OS X; de_de)", "app", 6),
    ("AppleCoreMedia/1.0.0.21H16 (iPad; U; CPU OS 17_7 like Mac OS X; fr_fr)", "app", 1.5),
    ("AppleCoreMedia/1.0.0.22J580 (Apple TV; U; CPU OS 18_1 like Mac OS X; en_gb)", "tv", 1.5),
    ("AppleCoreMedia/1.0.0.24B83 (Macintosh; U; Intel Mac OS X 15_1; de_de)", "app", 0.5),
    ("VideoApp/5.2.1 (Linux;Android 14) ExoPlayerLib/2.19.1", "app", 5),
    ("VideoApp/5.3.0 (Linux; Android 13; Pixel 7) AndroidXMedia3/1.4.1", "app", 2),
    ("Roku/DVP-14.0 (14.0.4.5185-46)", "tv", 1.5),
    ("Roku/DVP-13.1 (13.1.4.4304-C3)", "tv", 0.5),
    ("Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
     "94.0.4606.31/7.0 TV Safari/537.36", "tv", 2),
    ("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/87.0.4280.88 Safari/537.36 WebAppManager", "tv", 1.5),
    ("Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7624.3337N; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.102 Mobile Safari/537.36", "tv", 1),
    ("Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000", "tv", 1),
    ("Mozilla/5.0 (PlayStation; PlayStation 5/6.50) AppleWebKit/605.1.15 (KHTML, like Gecko)",
     "tv", 0.5),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox Series X) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edge/44.18363.8131", "tv", 0.3),
    ("VLC/3.0.21 LibVLC/3.0.21", "app", 0.3),
    ("Kodi/21.1 (X11; Linux x86_64) Debian/12 App_Bitness/64 Version/21.1-(21.1.0)", "app", 0.2),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot", 0.8),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bot", 0.4),
    ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "bot", 0.3),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", "bot", 0.3),
    ("curl/8.5.0", "bot", 0.2),
    ("python-requests/2.32.3", "bot", 0.2),
)  # fmt: skip

# Third-party referrers of watch pages and embedded players; `{id}` is the video, `{q}` words.
THIRD_PARTY_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.de/search?q={q}&source=hp&ei=Xa1bZ",
    "https://www.google.fr/search?q={q}&oq={q}&sourceid=chrome&ie=UTF-8",
    "https://www.bing.com/search?q={q}&form=QBLH",
    "https://duckduckgo.com/?q={q}&t=h_",
    "https://www.facebook.com/",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.example-video.eu%2Fwatch%2F{id}&h=AT0x",
    "https://m.facebook.com/story.php?story_fbid=10{id}&id=100064",
    "https://t.co/{id}Xk2",
    "https://www.reddit.com/r/videos/comments/{id}/what_a_match/",
    "https://news.ycombinator.com/item?id=4211{id}",
    "https://www.spiegel.de/sport/fussball/{q}-a-8f3e?utm_source=partner&utm_medium=embed",
    "https://www.lemonde.fr/culture/article/2026/11/24/{q}_6412.html?xtor=RSS-3208",
    "https://www.bbc.co.uk/news/articles/c{id}o?at_medium=RSS&at_campaign=rss",
    "https://www.derstandard.at/story/300000{id}/{q}",
    "https://WWW.Zeit.DE/kultur/film/2026-11/{q}?wt_zmc=sm.ext",
    "https://forum.example.org:8443/thread/{id}?page=2#post-77",
    "android-app://com.google.android.gm/",
)
QUERY_WORDS = ("highlights", "finale", "trailer", "doku", "concert+live", "match+replay",
               "tour+de+france", "wetter", "recette", "interview")  # fmt: skip


@dataclass(frozen=True)
class Client:
    ip: str
    ua: str
    kind: str


class AddressPool:
    """Public addresses drawn inside the country ranges of tor-geoipdb."""

    def __init__(self, geoip: Path = TOR_GEOIP, geoip6: Path = TOR_GEOIP6) -> None:
        self.v4 = self._load(geoip, int)
        self.v6 = self._load(geoip6, _v6_int)
        self.countries = list(COUNTRY_WEIGHTS)
        self.country_cum = list(accumulate(COUNTRY_WEIGHTS.values()))

    @staticmethod
    def _load(path: Path, to_int) -> dict[str, tuple[list[tuple[int, int]], list[int]]]:
        """{country: (ranges, cumulative sizes)}, plus "*" for every range with a country or
        a public one without ("??")."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        with path.open(encoding="ascii") as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                low_text, high_text, cc = line.rstrip().split(",")
                low, high = to_int(low_text), to_int(high_text)
                if cc == "??" and not _is_global(low, high):
                    continue
                ranges.setdefault(cc, []).append((low, high))
                ranges.setdefault("*", []).append((low, high))
        if not ranges:
            raise SystemExit(f"generate.py: no ranges in {path} (apt-get install tor-geoipdb)")
        return {
            cc: (rs, list(accumulate(min(high - low + 1, 1 << 24) for low, high in rs)))
            for cc, rs in ranges.items()
        }

    def _country(self, rng: random.Random, table: dict) -> str:
        while True:
            x = rng.random() * self.country_cum[-1]
            cc = self.countries[bisect.bisect(self.country_cum, x)]
            if cc in table:
                return cc

    @staticmethod
    def _in_range(rng: random.Random, table: dict, cc: str) -> int:
        ranges, cum = table[cc]
        low, high = ranges[bisect.bisect(cum, rng.random() * cum[-1])]
        return rng.randint(low, high)

    def ipv4(self, rng: random.Random) -> int:
        while True:
            n = self._in_range(rng, self.v4, self._country(rng, self.v4))
            if n & 0xFF not in (0, 255):  # no network or broadcast-looking addresses
                return n

    def ipv6(self, rng: random.Random) -> str:
        """All eight groups, none zero, no leading zeros: the /48 is `g1:g2:g3::` in Python's
        compressed form too."""
        cc = self._country(rng, self.v6)
        while True:
            n = self._in_range(rng, self.v6, cc)
            groups = [(n >> shift) & 0xFFFF for shift in range(112, -16, -16)]
            if groups[0] == 0x2002 or groups[:2] == [0x64, 0xFF9B]:
                continue  # 6to4 and NAT64 carry an IPv4: not plain IPv6 clients
            if all(groups):
                return ":".join(f"{g:x}" for g in groups)
            if not all(groups[:3]):  # a range whose /48 itself has a zero group
                cc = self._country(rng, self.v6)


def _v6_int(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")


def _is_global(low: int, high: int) -> bool:
    make = IPv4Address if high <= 0xFFFFFFFF else IPv6Address
    return make(low).is_global and make(high).is_global


def v4_text(n: int) -> str:
    return f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


class Population:
    """Viewers: new ones, returning ones (same address and device), neighbours behind the
    same ISP /24 (carrier-grade NAT pools, offices)."""

    def __init__(self, rng: random.Random, pool: AddressPool) -> None:
        self.rng = rng
        self.pool = pool
        self.seen: list[Client] = []
        self.v4_seen: list[int] = []
        self.ua_cum = list(accumulate(w for _, _, w in USER_AGENTS))

    def client(self) -> Client:
        rng = self.rng
        if self.seen and rng.random() < 0.18:
            return self.seen[rng.randrange(max(0, len(self.seen) - 5000), len(self.seen))]
        ua, kind, _ = USER_AGENTS[bisect.bisect(self.ua_cum, rng.random() * self.ua_cum[-1])]
        r = rng.random()
        if r < 0.25:
            ip = self.pool.ipv6(rng)
        elif r < 0.28:
            ip = "::ffff:" + v4_text(self.pool.ipv4(rng))
        else:
            if self.v4_seen and rng.random() < 0.15:
                n = (self.v4_seen[rng.randrange(len(self.v4_seen))] & ~0xFF) | rng.randint(1, 254)
            else:
                n = self.pool.ipv4(rng)
                self.v4_seen.append(n)
            ip = v4_text(n)
        client = Client(ip, ua, kind)
        self.seen.append(client)
        return client


# A session yields requests: (seconds after the previous one, method, target, status, bytes,
# referrer). `Session` holds what stays the same over a session.
Request = tuple[float, str, str, int, int, str]


class Session:
    def __init__(self, rng: random.Random, client: Client, video: str, segments: int) -> None:
        self.rng = rng
        self.client = client
        self.video = video
        self.segments = segments
        self.protocol = "HTTP/2.0" if rng.random() < 0.45 else "HTTP/1.1"
        if rng.random() < 0.02:
            self.protocol = "HTTP/1.0"
        self.token = f"token={rng.getrandbits(128):032x}&expires={START_UTC + 86400}"
        self.tokenized = rng.random() < 0.5
        self.cmcd = client.kind == "browser" and rng.random() < 0.3
        self.sid = f"{rng.getrandbits(64):016x}"
        self.page = f"{SITE}/watch/{video}"
        self.referrer = "-"
        if client.kind == "browser":
            self.referrer = self.page if rng.random() < 0.75 else self.third_party()

    def third_party(self) -> str:
        rng = self.rng
        template = THIRD_PARTY_REFERRERS[rng.randrange(len(THIRD_PARTY_REFERRERS))]
        return template.format(id=self.video, q=QUERY_WORDS[rng.randrange(len(QUERY_WORDS))])

    def query(self, extra: str = "") -> str:
        parts = [p for p in (self.token if self.tokenized else "", extra) if p]
        return "?" + "&".join(parts) if parts else ""

    def requests(self) -> Iterator[Request]:
        kind = self.client.kind
        if kind == "bot":
            yield from self.bot()
        elif self.rng.random() < 0.04 and kind in ("browser", "app"):
            yield from self.progressive()
        else:
            yield from self.hls(live=self.rng.random() < 0.15)

    def bot(self) -> Iterator[Request]:
        rng = self.rng
        yield 0.0, "GET", "/robots.txt", 200, 312, "-"
        for _ in range(rng.randint(1, 6)):
            video = f"{rng.getrandbits(30):08x}"
            target, status, size = rng.choice(
                (
                    (f"/vod/{video}/poster.jpg", 200, rng.randint(40_000, 180_000)),
                    (f"/vod/{video}/master.m3u8", 200, rng.randint(700, 1800)),
                    (f"/watch/{video}", 200, rng.randint(38_000, 52_000)),
                    (f"/vod/{video}/old.flv", 404, 153),
                )
            )
            yield rng.uniform(0.5, 20.0), "GET", target, status, size, "-"

    def progressive(self) -> Iterator[Request]:
        """An MP4 download played with range requests (206)."""
        rng = self.rng
        target = f"/vod/{self.video}/download_720p.mp4{self.query()}"
        for i in range(rng.randint(2, 40)):
            size = rng.randint(1 << 20, 4 << 20)
            yield (0.0 if i == 0 else rng.uniform(2, 15)), "GET", target, 206, size, self.referrer

    def hls(self, live: bool) -> Iterator[Request]:
        rng = self.rng
        base = f"/live/{self.video}" if live else f"/vod/{self.video}"
        ref = self.referrer
        if self.client.kind == "browser" and ref == self.page:
            entry = self.third_party() if rng.random() < 0.5 else "-"
            yield 0.0, "GET", f"/watch/{self.video}", 200, rng.randint(38_000, 52_000), entry
            if rng.random() < 0.05:
                yield rng.uniform(0.05, 0.3), "GET", "/favicon.ico", 404, 153, self.page
        first = rng.random() < 0.08 and not live
        yield (
            rng.uniform(0.2, 1.5),
            "GET",
            f"{base}/master.m3u8{self.query()}",
            304 if first else 200,
            0 if first else rng.randint(700, 1800),
            ref,
        )
        level = rng.randrange(1, len(RENDITIONS))
        watched = self.watch_length()
        position = 0.0
        next_beacon = 30.0
        segment = rng.randint(1, 5000) if live else 1
        switched = True
        for i in range(watched):
            dt = rng.uniform(0.05, 0.4) if i < 3 else max(0.05, rng.gauss(SEGMENT_SECONDS, 0.6))
            name, kbps = RENDITIONS[level]
            if switched or live:
                yield (
                    dt,
                    "GET",
                    f"{base}/{name}/index.m3u8{self.query()}",
                    200,
                    rng.randint(400, 9000),
                    ref,
                )
                dt = rng.uniform(0.02, 0.2)
            if switched:
                yield dt, "GET", f"{base}/{name}/init.mp4{self.query()}", 200, 1187 + level, ref
                dt = rng.uniform(0.02, 0.2)
                switched = False
            cmcd = ""
            if self.cmcd:
                buffer_ms = int(rng.uniform(2, 30) * 1000)
                cmcd = (
                    f"CMCD=bl%3D{buffer_ms}%2Cbr%3D{kbps}%2Cd%3D4000%2Cot%3Dv%2C"
                    f"sid%3D%22{self.sid}%22"
                )
            size = int(kbps * 500 * rng.uniform(0.7, 1.3))  # 4 s at kbps, +-30%
            status = 200
            if rng.random() < 0.003:
                status, size = 499, rng.randint(0, size)
            yield (
                dt,
                "GET",
                f"{base}/{name}/seg_{segment}.m4s{self.query(cmcd)}",
                status,
                size,
                ref,
            )
            segment += 1
            position += SEGMENT_SECONDS
            if rng.random() < 0.03:
                level = min(max(level + rng.choice((-1, 1)), 0), len(RENDITIONS) - 1)
                switched = True
            if position >= next_beacon:
                next_beacon += 30.0
                beacon = f"/beacon?e=heartbeat&sid={self.sid}&v={self.video}&pos={int(position)}"
                yield rng.uniform(0.01, 2.0), "POST", f"{beacon}&br={kbps}", 204, 0, ref
        if not live and segment > self.segments and rng.random() < 0.3:
            name = RENDITIONS[level][0]
            yield 0.3, "GET", f"{base}/{name}/seg_{segment}.m4s{self.query()}", 404, 153, ref

    def watch_length(self) -> int:
        """Segments watched: many short views, a long tail, never past the end of a video."""
        rng = self.rng
        bounced = rng.random() < 0.2
        n = rng.randint(1, 3) if bounced else int(rng.expovariate(1 / 25)) + 1
        if self.client.kind == "tv":
            n *= 3
        return min(n, self.segments + 1)


class Catalogue:
    """Videos with Zipf-like popularity, so a few are watched by many."""

    def __init__(self, rng: random.Random, size: int = 5000) -> None:
        self.ids = [f"{rng.getrandbits(40):010x}" for _ in range(size)]
        self.segments = [rng.randint(15, 900) for _ in range(size)]
        self.cum = list(accumulate(1 / (rank + 1) ** 0.9 for rank in range(size)))
        self.rng = rng

    def pick(self) -> tuple[str, int]:
        i = bisect.bisect(self.cum, self.rng.random() * self.cum[-1])
        return self.ids[i], self.segments[i]


class TimeLocal:
    """Seconds since the epoch -> nginx's $time_local text, one strftime per second."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def __call__(self, t: float) -> str:
        second = int(t)
        if second != self.second:
            self.second = second
            local = time.gmtime(second + OFFSET_SECONDS)
            self.text = time.strftime("%d/%b/%Y:%H:%M:%S ", local) + OFFSET_TEXT
        return self.text


def generate(lines: int, seed: int, out) -> None:
    """Write `lines` log lines to the text stream `out`."""
    rng = random.Random(seed)
    pool = AddressPool()
    population = Population(rng, pool)
    catalogue = Catalogue(rng)
    time_local = TimeLocal()
    heap: list[tuple[float, int, Request, Iterator[Request], Session]] = []
    sequence = 0

    def start(at: float) -> None:
        nonlocal sequence
        session = Session(rng, population.client(), *catalogue.pick())
        requests = session.requests()
        first = next(requests)
        sequence += 1
        heapq.heappush(heap, (at + first[0], sequence, first, requests, session))

    for _ in range(CONCURRENT_SESSIONS):
        start(START_UTC + rng.uniform(0, 10))
    batch: list[str] = []
    for _ in range(lines):
        t, seq, (_, method, target, status, size, referrer), requests, session = heap[0]
        client = session.client
        batch.append(
            f'{client.ip} - - [{time_local(t)}] "{method} {target} {session.protocol}" '
            f'{status} {size} "{referrer}" "{client.ua}"\n'
        )
        following = next(requests, None)
        if following is None:
            heapq.heappop(heap)
            start(t + rng.expovariate(1 / 3.0))
        else:
            heapq.heapreplace(heap, (t + following[0], seq, following, requests, session))
        if len(batch) >= 10_000:
            out.write("".join(batch))
            batch.clear()
    out.write("".join(batch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, required=True, help="how many lines to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args(argv)
    generate(args.lines, args.seed, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
