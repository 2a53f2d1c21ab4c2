"""Operating settings and the metric totals' rendering (no servers needed)."""

from __future__ import annotations

import pytest

from shared.infra.metrics import Recorder
from shared.infra.metrics.exposition import _families, metrics_allowed
from shared.settings import Settings, SettingsError


def test_operating_settings_from_the_environment() -> None:
    defaults = Settings.from_env({}).operating
    assert (defaults.retention_days, defaults.log_format, defaults.metrics_token) == (30, "json", None)
    custom = Settings.from_env(
        {"RETENTION_DAYS": "0", "LOG_FORMAT": "TEXT", "WORKER_HEARTBEAT_S": "600", "METRICS_TOKEN": "t"}
    ).operating
    assert (custom.retention_days, custom.log_format, custom.metrics_token) == (0, "text", "t")
    assert custom.worker_heartbeat_s == 60  # the arq health check runs at least every minute
    with pytest.raises(SettingsError):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError):
        Settings.from_env({"RETENTION_DAYS": "-1"})


def test_trusted_proxies_are_explicit() -> None:
    assert Settings.from_env({}).forwarded_allow_ips == ()  # by default no proxy is believed
    listed = Settings.from_env({"FORWARDED_ALLOW_IPS": " 10.0.0.0/8, 127.0.0.1 ,::1,192.168.1.7/24"})
    assert listed.forwarded_allow_ips == ("10.0.0.0/8", "127.0.0.1/32", "::1/128", "192.168.1.0/24")
    assert Settings.from_env({"FORWARDED_ALLOW_IPS": "*"}).forwarded_allow_ips == ("*",)
    for wrong in ("localhost", "10.0.0.0/33", "*, 10.0.0.1"):
        with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
            Settings.from_env({"FORWARDED_ALLOW_IPS": wrong})
    assert Settings.from_env({}).rate_limits.invalid_keys_per_ip_per_min == 60
    with pytest.raises(SettingsError, match="INVALID_KEY_RATE_PER_MIN"):
        Settings.from_env({"INVALID_KEY_RATE_PER_MIN": "0"})


def test_histograms_render_cumulative_buckets_and_counters_add_up() -> None:
    recorder = Recorder()
    for seconds in (0.003, 0.2, 0.2, 99.0):
        recorder.observe("conduit_http_request_duration_seconds", {"method": "GET", "route": "/x"}, seconds)
    recorder.inc("conduit_http_requests", {"method": "GET", "route": "/x", "status": 200}, 2)
    drained = recorder.drain()
    assert recorder.drain() == {}
    recorder.restore(drained)  # a failed flush puts them back
    totals = recorder.drain()
    families = {f.name: f for f in _families(totals)}
    samples = {(s.name, s.labels.get("le")): s.value for s in families["conduit_http_request_duration_seconds"].samples}
    assert samples[("conduit_http_request_duration_seconds_bucket", "0.005")] == 1
    assert samples[("conduit_http_request_duration_seconds_bucket", "0.25")] == 3
    assert samples[("conduit_http_request_duration_seconds_bucket", "10.0")] == 3
    assert samples[("conduit_http_request_duration_seconds_bucket", "+Inf")] == 4
    assert samples[("conduit_http_request_duration_seconds_count", None)] == 4
    assert samples[("conduit_http_request_duration_seconds_sum", None)] == pytest.approx(99.403)
    [requests] = families["conduit_http_requests"].samples
    assert requests.labels == {"method": "GET", "route": "/x", "status": "200"} and requests.value == 2


def test_metrics_access() -> None:
    assert metrics_allowed(None, None, "127.0.0.1") and metrics_allowed(None, None, "::1")
    assert not metrics_allowed(None, None, "10.0.0.7")
    assert metrics_allowed("tok", "Bearer tok", "10.0.0.7")
    assert not metrics_allowed("tok", "Bearer nope", "127.0.0.1")
    assert not metrics_allowed("tok", None, "127.0.0.1")
