"""metrics: names follow the convention, labels come from closed sets, registries do not collide."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import apsw
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sidecar import reject
from sidecar.metrics import (
    DATAGRAM_RESULTS,
    DEAD_LETTER_REASONS,
    DROP_REASONS,
    GEO_RESULTS,
    IP_FAMILIES,
    REFERRER_KINDS,
    RELOAD_RESULTS,
    SOURCES,
    STATUS_CLASSES,
    Metrics,
)
from sidecar.privacy.clean import COUNTRIES
from sidecar.sinks.base import SinkRejected
from sidecar.sinks.clickhouse import DATA_CODES, RETRYABLE_CODES, SCHEMA_CODES, classify
from sidecar.sinks.sqlite import _classify
from tests.conftest import PROJECT
from tests.sinks import DoubleSink, numbered, start, storage

#: every metric family and its label names
FAMILIES = {
    "sidecar_lines_received": ("counter", ("source",)),
    "sidecar_lines_rejected": ("counter", ("source", "reason")),
    "sidecar_records_out": ("counter", ("source",)),
    "sidecar_records_delivered": ("counter", ("sink",)),
    "sidecar_records_spooled": ("counter", ("sink",)),
    "sidecar_records_dropped": ("counter", ("sink", "reason")),
    "sidecar_records_dead_lettered": ("counter", ("sink", "reason")),
    "sidecar_records_overflowed": ("counter", ("sink",)),
    "sidecar_sink_retries": ("counter", ("sink",)),
    "sidecar_spool_bytes": ("gauge", ("sink",)),
    "sidecar_spool_max_bytes": ("gauge", ("sink",)),
    "sidecar_queue_bytes": ("gauge", ("sink",)),
    "sidecar_sink_up": ("gauge", ("sink",)),
    "sidecar_sink_last_success_timestamp_seconds": ("gauge", ("sink",)),
    "sidecar_sink_batch_seconds": ("histogram", ("sink",)),
    "sidecar_syslog_datagrams": ("counter", ("source", "result")),
    "sidecar_datagrams_kernel_dropped": ("counter", ("source",)),
    "sidecar_config_reloads": ("counter", ("result",)),
    "sidecar_proxy_exchanges": ("counter", ("result",)),
    "sidecar_proxy_request_duration_seconds": ("histogram", ()),
    "sidecar_build_info": ("gauge", ("version", "schema")),
    "sidecar_geo_lookups": ("counter", ("result",)),
    "sidecar_ips_masked": ("counter", ("family",)),
    "sidecar_referrers": ("counter", ("kind",)),
    "sidecar_records_by_country": ("counter", ("country",)),
    "sidecar_records_by_status_class": ("counter", ("status_class",)),
}
#: the closed set each label takes its values from (sink names come from the config)
CLOSED = {
    ("sidecar_lines_rejected", "reason"): set(reject.REASONS),
    ("sidecar_records_dropped", "reason"): set(DROP_REASONS),
    ("sidecar_records_dead_lettered", "reason"): set(DEAD_LETTER_REASONS),
    ("sidecar_syslog_datagrams", "result"): set(DATAGRAM_RESULTS),
    ("sidecar_config_reloads", "result"): set(RELOAD_RESULTS),
    ("sidecar_geo_lookups", "result"): set(GEO_RESULTS),
    ("sidecar_ips_masked", "family"): set(IP_FAMILIES),
    ("sidecar_referrers", "kind"): set(REFERRER_KINDS),
    ("sidecar_records_by_status_class", "status_class"): set(STATUS_CLASSES),
    ("sidecar_records_by_country", "country"): {*COUNTRIES, "unknown"},
    **{(f, "source"): set(SOURCES) for f in (
        "sidecar_lines_received", "sidecar_lines_rejected", "sidecar_records_out",
        "sidecar_syslog_datagrams", "sidecar_datagrams_kernel_dropped")},
}  # fmt: skip


def sidecar_families(m: Metrics):
    """The registry's families but the process collector's (process_*)."""
    return [f for f in m.registry.collect() if f.name.startswith("sidecar_")]


def touched() -> Metrics:
    """A Metrics with every configured source and sink pre-set (as sidecar does at start)."""
    m = Metrics()
    for source in SOURCES:
        m.add_source(source)
    for sink in ("sqlite-analytics.db", "clickhouse-analytics.requests"):
        m.add_sink(sink, 1 << 30)
        m.batch_seconds.labels(sink).observe(0.01)
    return m


def test_the_families_and_their_labels() -> None:
    got = {}
    for family in sidecar_families(touched()):
        labels = {tuple(k for k in s.labels if k != "le") for s in family.samples}
        assert len(labels) == 1, family.name
        got[family.name] = (family.type, labels.pop())
    assert got == FAMILIES


@pytest.mark.parametrize("family", list(FAMILIES))
def test_names_follow_the_convention(family: str) -> None:
    kind, _ = FAMILIES[family]
    assert re.fullmatch(r"sidecar(_[a-z]+)+", family)
    names = {s.name for f in touched().registry.collect() if f.name == family for s in f.samples}
    if kind == "counter":  # sidecar_<noun>[_<unit>]_total, and no _created series
        assert names == {family + "_total"}
    else:
        assert not any(n.endswith(("_total", "_created")) for n in names)
        assert family.endswith(("_bytes", "_seconds", "_up", "_info"))  # base units, or 0/1


def test_exposition_text_parses_and_only_counters_end_in_total(tmp_path: Path) -> None:
    m = touched()
    path = tmp_path / "sidecar.prom"
    m.write_textfile(str(path))  # for node_exporter's textfile collector
    families = {
        f.name: f
        for f in text_string_to_metric_families(path.read_text())
        if f.name.startswith("sidecar_")
    }
    assert set(families) == set(FAMILIES)
    for name, family in families.items():
        assert family.type == FAMILIES[name][0]
    text = path.read_text()
    assert 'sidecar_lines_received_total{source="follow"} 0.0' in text  # pre-set: rate() works
    assert "_created" not in text and "process_resident_memory_bytes" in text


def test_label_values_come_from_closed_sets() -> None:
    for family in sidecar_families(touched()):
        for s in family.samples:
            for label, value in s.labels.items():
                allowed = CLOSED.get((family.name, label))
                if allowed is not None:
                    assert value in allowed, (family.name, label, value)
    assert set(reject.REASONS) and "spool_full" in DROP_REASONS  # others: delivery failures
    assert set(DEAD_LETTER_REASONS) == {"schema", "data", "other"}


@pytest.mark.parametrize(
    "code",
    sorted(RETRYABLE_CODES | SCHEMA_CODES | DATA_CODES | {0, 1, 62, 390, 1000, 99999}),
)
def test_clickhouse_refusal_reasons_are_in_the_closed_set(code: int) -> None:
    exc = classify(500, f"Code: {code}, e.displayText() = DB::Exception: something")
    if isinstance(exc, SinkRejected):
        assert exc.reason in DEAD_LETTER_REASONS


@pytest.mark.parametrize(
    "error",
    [
        apsw.SQLError("SQLError: table requests_2026_11 has no column named x"),
        apsw.SQLError("SQLError: no such table: daily"),
        apsw.ConstraintError("NOT NULL constraint failed: requests_2026_11.ts"),
        apsw.BindingsError("Incorrect number of bindings supplied"),
        apsw.SQLError('near "x": syntax error'),
        apsw.NotADBError("file is not a database"),
        apsw.CorruptError("database disk image is malformed"),
        KeyError("host"),
        OverflowError("int too big to convert"),
        TypeError("Bad binding argument type supplied - argument #3: type dict"),
    ],
)
def test_sqlite_refusal_reasons_are_in_the_closed_set(error: Exception) -> None:
    exc = _classify(error)
    if isinstance(exc, SinkRejected):
        assert exc.reason in DEAD_LETTER_REASONS


def test_a_delivery_labels_with_its_sink_id_only(tmp_path: Path) -> None:
    sink = DoubleSink(
        "double:metrics",
        fail=1,
        batch_max_rows=2,
        batch_timeout_secs=0.02,
        reject=lambda r: "data" if r["bytes"] == 3 else None,
    )
    m = Metrics()
    d, _ = start(sink, storage(tmp_path), m)
    d.submit(numbered(6))
    d.close()
    values = {
        s.labels["sink"] for f in m.registry.collect() for s in f.samples if "sink" in s.labels
    }
    assert values == {sink.id}


def test_a_fresh_registry_per_metrics() -> None:
    a, b = Metrics(), Metrics()  # no "Duplicated timeseries" error
    assert a.registry is not b.registry
    a.lines_received.labels("stdin").inc(5)
    a.records_delivered.labels("s").inc(2)
    assert a.registry.get_sample_value("sidecar_lines_received_total", {"source": "stdin"}) == 5
    assert b.registry.get_sample_value("sidecar_lines_received_total", {"source": "stdin"}) is None
    assert b.registry.get_sample_value("sidecar_records_delivered_total", {"sink": "s"}) is None


def test_a_given_registry_is_used_and_cannot_take_a_second_set() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    assert m.registry is registry
    m.lines_received.labels("file").inc()
    assert registry.get_sample_value("sidecar_lines_received_total", {"source": "file"}) == 1
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry)


def test_the_textfile_never_replaces_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "sidecar.prom"  # a FIFO stands in for /dev/full: the old code replaced it
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="is not a regular file"):
        Metrics(CollectorRegistry()).write_textfile(str(fifo))
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    with pytest.raises(OSError, match="is a folder"):
        Metrics(CollectorRegistry()).write_textfile(str(tmp_path))


def test_the_stage_counts_arrive_per_chunk(tmp_path: Path) -> None:
    from sidecar.app import App
    from sidecar.formats.registry import resolve
    from tests.conftest import make_config

    cfg = make_config(referrer={"first_party_hosts": ["example-video.eu"]})
    app = App(cfg, [config_mod_sink()], source="stdin")
    lines = (
        b'81.2.69.142 - - [01/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 '
        b'"https://www.example-video.eu/x" "curl/8"\n'
        b'2001:db8::1 - - [01/Dec/2026:10:00:00 +0000] "GET /b HTTP/1.1" 404 5 '
        b'"https://other.example/" "curl/8"\n'
        b'10.0.0.1 - - [01/Dec/2026:10:00:00 +0000] "GET /c HTTP/1.1" 302 5 "-" "curl/8"\n'
    )
    app.emit(app.pipeline(resolve("combined", "--format")).process(lines))
    value = app.metrics.registry.get_sample_value
    assert value("sidecar_records_by_country_total", {"country": "GB"}) == 1
    assert value("sidecar_records_by_country_total", {"country": "unknown"}) == 2
    assert value("sidecar_geo_lookups_total", {"result": "hit"}) == 1
    assert value("sidecar_geo_lookups_total", {"result": "miss"}) == 2
    assert value("sidecar_ips_masked_total", {"family": "ipv6"}) == 1
    assert value("sidecar_ips_masked_total", {"family": "ipv4"}) == 2
    for kind, n in (("first_party", 1), ("third_party", 1), ("none", 1), ("dropped", 0)):
        assert value("sidecar_referrers_total", {"kind": kind}) == n
    for cls, n in (("2xx", 1), ("3xx", 1), ("4xx", 1), ("5xx", 0)):
        assert value("sidecar_records_by_status_class_total", {"status_class": cls}) == n
    app.close()


def config_mod_sink():
    from sidecar.config import sink_config

    return sink_config("stdout:")


def test_docs_metrics_md_lists_every_family_with_its_type_and_labels() -> None:
    doc = (PROJECT / "docs" / "metrics.md").read_text()
    rows = re.findall(r"^\| `(sidecar_\w+)` \| (\w+) \| ([^|]*) \| [^|]+ \|$", doc, re.M)
    documented = {
        name.removesuffix("_total") if kind == "counter" else name: (kind, tuple(
            re.findall(r"`(\w+)`", labels)))
        for name, kind, labels in rows
    }  # fmt: skip
    assert documented == FAMILIES  # FAMILIES is checked against the registry above
    assert "REASONS" in doc and all(r in doc for r in reject.REASONS)


def test_promtool_check_metrics_passes_on_the_textfile(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: tests/setup.sh installs Debian's prometheus"
    path = tmp_path / "sidecar.prom"
    touched().write_textfile(str(path))
    with path.open("rb") as fh:
        out = subprocess.run([promtool, "check", "metrics"], stdin=fh, capture_output=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr
