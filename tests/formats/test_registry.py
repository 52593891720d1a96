"""formats.registry: `--format` names and log_format strings -> parsers."""

from __future__ import annotations

import pytest

from sidecar.errors import ConfigError, UsageError
from sidecar.formats.log_format import TemplateFormat
from sidecar.formats.nginx_json import JsonFormat
from sidecar.formats.registry import NAMES, resolve


def test_names() -> None:
    assert NAMES == (
        "auto",
        "common",
        "combined",
        "vhost_combined",
        "vhost_common",
        "nginx-main",
        "nginx-json",
    )


def test_auto_is_detected_later() -> None:
    assert resolve("auto") is None


@pytest.mark.parametrize("name", [n for n in NAMES if n != "auto"])
def test_each_name_resolves_to_its_format(name: str) -> None:
    fmt = resolve(name)
    assert fmt is not None and fmt.name == name
    assert isinstance(fmt, JsonFormat if name == "nginx-json" else TemplateFormat)


@pytest.mark.parametrize(
    "spec, cls, name",
    [
        ("$remote_addr [$time_local] $status", TemplateFormat, "custom"),
        ("log_format cdn '$remote_addr $msec $status';", TemplateFormat, "cdn"),
        ('{"ip":"$remote_addr","t":"$msec","s":$status}', JsonFormat, "custom"),
    ],
)
def test_log_format_strings(spec: str, cls: type, name: str) -> None:
    fmt = resolve(spec)
    assert isinstance(fmt, cls) and fmt.name == name


@pytest.mark.parametrize(
    "spec",
    ["apache", "Combined", "nginx_json", "", "log_format main 'no variables';", "json"],
)
def test_unknown_name_lists_the_known_ones(spec: str) -> None:
    with pytest.raises(UsageError) as exc:
        resolve(spec)
    message = str(exc.value)
    assert f"unknown format {spec!r}" in message
    assert ", ".join(NAMES) in message
    assert "nginx log_format string" in message
    assert exc.value.exit_code == 2


def test_a_log_format_missing_a_variable_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"has no \$status"):
        resolve("$remote_addr [$time_local]")


@pytest.mark.parametrize(
    "spec", ["bogus", "$remote_addr [$time_local]", "log_format x '$status';", '{"a":"b"}']
)
def test_a_bad_value_names_its_key_and_file(spec: str) -> None:
    with pytest.raises(UsageError) as flag:
        resolve(spec)
    assert str(flag.value).startswith("--format: ")
    with pytest.raises(ConfigError) as key:
        resolve(spec, "input.format", "/etc/sidecar.toml")
    message = str(key.value)
    assert message.startswith("input.format: ") and message.endswith(" (in /etc/sidecar.toml)")
    assert "--format" not in message and key.value.exit_code == 2
    assert message.removeprefix("input.format: ").removesuffix(" (in /etc/sidecar.toml)") == str(
        flag.value
    ).removeprefix("--format: ")


def test_a_config_file_without_a_directive(tmp_path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text("# log_format commented '$remote_addr';\nhttp {}\n")
    with pytest.raises(UsageError, match=r"^--format: '.*nginx.conf' holds no log_format"):
        resolve(str(conf))
