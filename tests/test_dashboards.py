"""config/: the Grafana dashboard, the Prometheus rules and the scrape example stay true to sidecar.

promtool (Debian package `prometheus`, installed by tests/setup.sh) checks the rules and runs their
unit tests; a missing promtool fails loudly. Every PromQL expression in the dashboard (panels and
template variables) and in the rules may name only metrics that `sidecar.metrics.Metrics()`
exports, `up`, `scrape_*`, `ALERTS` and the rules' own recording rules: a renamed metric breaks
this test before it breaks an operator's dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from sidecar.metrics import Metrics

CONFIG = Path(__file__).resolve().parents[1] / "config"
DASHBOARD = CONFIG / "grafana" / "sidecar-dashboard.json"
RULES = CONFIG / "prometheus" / "alerts.yml"
RULES_TEST = CONFIG / "prometheus" / "alerts_test.yml"
SCRAPE = CONFIG / "prometheus" / "scrape.yml"

#: PromQL functions (Prometheus 2.42), aggregation operators and keywords, and the Grafana
#: template-variable query functions: identifiers in an expression that are not metric names
_WORDS = """
    abs absent absent_over_time acos acosh asin asinh atan atanh ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time days_in_month day_of_month day_of_week day_of_year deg
    delta deriv exp floor histogram_quantile holt_winters hour idelta increase irate label_join
    label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh
    sort sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time avg_over_time tan tanh
    time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right offset bool and or unless atan2 start end
    inf nan
    label_values label_names metrics query_result
"""
PROMQL_WORDS = frozenset(_WORDS.split())
#: `by (...)`, `on (...)` and friends: the parentheses hold label names, not metrics
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENT = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])")
#: Grafana's `label_values(expr, label)`: the last argument is a label name
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*(?:(.*),\s*)?\w+\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL (or Grafana variable) expression selects.

    Strings, `{...}` label matchers, `[...]` ranges, `by (...)`-style label lists and Grafana
    `$variables` are removed first; what remains is a metric name unless it is a PromQL
    function, operator or keyword, or a number (`0.95`, `1e-3`, `5m`)."""
    text = _LABEL_VALUES.sub(r"\1", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _VARIABLE.sub(" ", text)
    while True:
        stripped = _LABEL_LIST.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(1)
        if word.lower() in PROMQL_WORDS:
            continue
        follows = text[match.end() :].lstrip()
        if follows.startswith("("):
            raise AssertionError(f"unknown PromQL function {word!r} in {expr!r}")
        names.add(word)
    return names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (source) (rate(sidecar_lines_received_total{instance=~"$instance"}[5m]))',
         {"sidecar_lines_received_total"}),
        ("histogram_quantile(0.95, sum by (sink, le) (rate(sidecar_sink_batch_seconds_bucket"
         '{sink=~"$sink"}[$__rate_interval])))', {"sidecar_sink_batch_seconds_bucket"}),
        ("sum(rate(a_total[5m])) by (le) / on (instance) group_left (version) b_info offset 1h",
         {"a_total", "b_info"}),
        ('topk(10, sum without (reason) (increase(c_total{reason!="x y"}[${__range}])))',
         {"c_total"}),
        ('{__name__="hidden"} > bool 1e-3 and sidecar:lines_received:rate5m or absent(up)',
         {"sidecar:lines_received:rate5m", "up"}),
        ("time() - max by (sink) (d_seconds > 0) unless ignoring(job) ALERTS", {"d_seconds", "ALERTS"}),
        ('label_values(sidecar_sink_up{instance=~"$instance"}, sink)', {"sidecar_sink_up"}),
        ("label_values(instance)", set()),
        ("vector(1) * inf + scrape_duration_seconds", {"scrape_duration_seconds"}),
    ],
)  # fmt: skip
def test_metric_names_extracts_only_metrics(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_metric_names_refuses_an_unknown_function() -> None:
    with pytest.raises(AssertionError, match="unknown PromQL function"):
        metric_names("rat(sidecar_lines_received_total[5m])")


def exported_names() -> set[str]:
    """Every sample name `Metrics()`'s registry exposes, including families with no child yet."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.update(sample.name for sample in family.samples)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"),
            "info": ("_info",),
        }.get(family.type, ("",))
        names.update(family.name + suffix for suffix in suffixes)
    return names


def load_rules() -> dict[str, Any]:
    return YAML(typ="safe").load(RULES.read_text())


def recording_rules() -> set[str]:
    return {r["record"] for g in load_rules()["groups"] for r in g["rules"] if "record" in r}


def dashboard_exprs(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and query template variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "templating":
                for var in value["list"]:
                    if var.get("type") == "query":
                        query = var["query"]
                        yield query["query"] if isinstance(query, dict) else query
            else:
                yield from dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_exprs(item)


def allowed(name: str, exported: set[str], recorded: set[str]) -> bool:
    return (
        name in exported
        or name in recorded
        or name in {"up", "ALERTS"}
        or (name.startswith("scrape_"))
    )


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool not found: run tests/setup.sh (Debian package prometheus)"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    tests = YAML(typ="safe").load(RULES_TEST.read_text())["tests"]
    checks = [c for t in tests for c in t.get("alert_rule_test", [])]
    alerts = {r["alert"] for g in load_rules()["groups"] for r in g["rules"] if "alert" in r}
    fired = {c["alertname"] for c in checks if c.get("exp_alerts")}
    silent = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - silent == set(), "alerts never tested staying silent"


def test_rules_name_only_exported_metrics() -> None:
    exported, recorded = exported_names(), recording_rules()
    unknown = {
        (rule.get("alert") or rule["record"], name)
        for group in load_rules()["groups"]
        for rule in group["rules"]
        for name in metric_names(rule["expr"])
        if not allowed(name, exported, recorded)
    }
    assert unknown == set(), "rules name metrics sidecar does not export"


def test_dashboard_is_importable() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "sink"} <= set(variables)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells = [
        (x, y, panel["title"])
        for panel in dash["panels"]
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert all(x < 24 for x, _, _ in cells), "the grid is 24 wide"
    assert len({(x, y) for x, y, _ in cells}) == len(cells), "panels overlap"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"


def test_dashboard_names_only_exported_metrics() -> None:
    exported, recorded = exported_names(), recording_rules()
    exprs = list(dashboard_exprs(json.loads(DASHBOARD.read_text())))
    assert len(exprs) > 20
    unknown = {
        (expr, name)
        for expr in exprs
        for name in metric_names(expr)
        if not allowed(name, exported, recorded)
    }
    assert unknown == set(), "the dashboard names metrics sidecar does not export"


def test_scrape_example_passes_promtool_check_config(tmp_path: Path) -> None:
    """Debian's Prometheus has no Kubernetes service discovery: check the file without that job,
    and the job's relabelling on its own (test_pod_relabelling_addresses)."""
    yaml = YAML(typ="safe")
    config = yaml.load(SCRAPE.read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == ["sidecar", "sidecar-pods"]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["127.0.0.1:9187"]}]
    config["scrape_configs"] = config["scrape_configs"][:1]
    config["rule_files"] = [str(RULES)]
    with (tmp_path / "prometheus.yml").open("w") as out:
        yaml.dump(config, out)
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def relabel(labels: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus relabelling (the `keep` and `replace` actions), enough for the example job."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if rule.get("action", "replace") == "keep":
            if not match:
                return None
        elif match:
            template = rule.get("replacement", "$1")
            labels[rule["target_label"]] = match.expand(re.sub(r"\$(\d+)", r"\\\1", template))
    return labels


@pytest.mark.parametrize(
    ("pod_ip", "address"), [("10.1.2.3", "10.1.2.3:9187"), ("fd00:1::2a", "[fd00:1::2a]:9187")]
)
def test_pod_relabelling_addresses(pod_ip: str, address: str) -> None:
    job = YAML(typ="safe").load(SCRAPE.read_text())["scrape_configs"][1]
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    pod = {
        "__address__": f"{pod_ip}:8080",
        "__meta_kubernetes_pod_ip": pod_ip,
        f"{annotation}scrape": "true",
        f"{annotation}port": "9187",
        "__meta_kubernetes_namespace": "cdn",
        "__meta_kubernetes_pod_name": "edge-0",
        "__metrics_path__": "/metrics",
    }
    target = relabel(pod, job["relabel_configs"])
    assert target is not None
    assert (target["__address__"], target["namespace"], target["pod"]) == (address, "cdn", "edge-0")
    assert relabel({**pod, f"{annotation}scrape": "false"}, job["relabel_configs"]) is None


#: what Grafana puts in place of its variables, for promtool to parse the expression
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*", "$sink": ".*"}


def test_dashboard_exprs_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each panel expression (Grafana's variables filled in) as a recording rule."""
    rules = []
    for i, expr in enumerate(dashboard_exprs(json.loads(DASHBOARD.read_text()))):
        if _LABEL_VALUES.search(expr):
            expr = _LABEL_VALUES.sub(r"\1", expr)
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    with path.open("w") as out:
        YAML(typ="safe").dump({"groups": [{"name": "dashboard", "rules": rules}]}, out)
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
