"""app: the composition root every mode shares: emit with acks, reload, close, names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sidecar import config as config_mod
from sidecar.app import App, sink_configs
from sidecar.errors import ConfigError
from tests.conftest import make_config
from tests.sinks import wait_until

LINE = (
    b'203.0.113.77 - - [01/Dec/2026:10:00:00 +0000] "GET /a?token=x&utm_source=y HTTP/1.1" '
    b'200 5 "-" "curl/8.0"\n'
)


def cfg_in(tmp_path: Path, **sections) -> config_mod.Config:
    sections.setdefault("storage", {}).update(
        spool_dir=str(tmp_path / "spool"), dead_letter_dir=str(tmp_path / "dl"),
        retry_initial_secs=0.02, retry_max_secs=0.1, shutdown_timeout_secs=2.0,
    )  # fmt: skip
    return make_config(**sections)


def jsonl(tmp_path: Path, name: str) -> config_mod.SinkConfig:
    return config_mod.from_mapping(
        {"sinks": [{"url": f"jsonl:{tmp_path / name}", "batch_timeout_secs": 0.01}]}
    ).sinks[0]


def test_an_ack_fires_once_every_sink_has_the_records(tmp_path: Path) -> None:
    cfg = cfg_in(tmp_path)
    app = App(cfg, [jsonl(tmp_path, "a.jsonl"), jsonl(tmp_path, "b.jsonl")], daemon=True)
    from sidecar.formats.registry import resolve

    pipeline = app.pipeline(resolve("combined", "--format"))
    acked = threading.Event()
    app.emit(pipeline.process(LINE * 3), acked.set, source="stdin")
    assert acked.wait(5.0)
    for name in ("a.jsonl", "b.jsonl"):
        assert (tmp_path / name).read_bytes().count(b"\n") == 3
    assert app.snapshot()["sources"] == {"stdin": 3}
    stats = app.close()
    assert {s["delivered"] for s in stats.values()} == {3}


def test_a_chunk_of_rejects_only_is_acked_at_once(tmp_path: Path) -> None:
    app = App(cfg_in(tmp_path), [jsonl(tmp_path, "a.jsonl")], daemon=True)
    acked: list[int] = []
    app.emit(app.pipeline(None).process(b"junk\n"), lambda: acked.append(1))
    assert acked == [1]
    assert app.stats.rejected == {"format_mismatch": 1}
    app.close()


def test_reload_swaps_the_rules_and_the_sinks_and_loses_nothing(tmp_path: Path) -> None:
    from sidecar.formats.registry import resolve

    fmt = resolve("combined", "--format")
    cfg = cfg_in(tmp_path)
    app = App(cfg, [jsonl(tmp_path, "a.jsonl")], daemon=True)
    app.emit(app.pipeline(fmt).process(LINE))
    new_cfg = cfg_in(tmp_path, query={"allow": ["utm_*"]})
    app.reload(new_cfg, [jsonl(tmp_path, "a.jsonl"), jsonl(tmp_path, "b.jsonl")])
    app.emit(app.pipeline(fmt).process(LINE))
    wait_until(lambda: (tmp_path / "b.jsonl").exists(), what="the new sink")
    app.reload(new_cfg, [jsonl(tmp_path, "b.jsonl")])  # a.jsonl retired: flushed and closed
    stats = app.close()
    a = (tmp_path / "a.jsonl").read_text().splitlines()
    b = (tmp_path / "b.jsonl").read_text().splitlines()
    assert len(a) == 2 and len(b) == 1
    assert '"query":null' in a[0] and '"query":"utm_source=y"' in a[1] and "utm_source" in b[0]
    assert stats["jsonl-a.jsonl"]["delivered"] == 2 and stats["jsonl-b.jsonl"]["delivered"] == 1


def test_a_reload_that_cannot_be_used_changes_nothing(tmp_path: Path) -> None:
    cfg = cfg_in(tmp_path)
    app = App(cfg, [jsonl(tmp_path, "a.jsonl")], daemon=True)
    stage = app.stage
    bad = cfg_in(tmp_path, geoip={"database": str(tmp_path / "missing.mmdb")})
    with pytest.raises(ConfigError, match=r"geoip\.database"):
        app.reload(bad, [jsonl(tmp_path, "a.jsonl")])
    twins = [jsonl(tmp_path, "a.jsonl"), jsonl(tmp_path / "x", "a.jsonl")]
    with pytest.raises(ConfigError, match="distinct `name`"):
        app.reload(cfg, twins)
    assert app.stage is stage and [d.label for d in app.deliveries] == ["jsonl-a.jsonl"]
    app.close()


def test_two_sinks_with_one_default_name_are_refused_at_start(tmp_path: Path) -> None:
    cfg = cfg_in(tmp_path)
    urls = [f"sqlite:{tmp_path}/a/analytics.db", f"sqlite:{tmp_path}/b/analytics.db"]
    with pytest.raises(ConfigError, match=r"sqlite-analytics\.db"):
        App(cfg, sink_configs(urls, cfg, default=None))
