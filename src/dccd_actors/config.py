"""Configuration: frozen dataclasses validated on creation, and dccd's YAML vocabulary.

Example::

    >>> from dccd_actors import CollectorConfig, StorageConfig, StreamJob
    >>> cfg = CollectorConfig(storage=StorageConfig(local_path="data"),
    ...                       stream_jobs=[StreamJob("binance", ["BTC/USDT"], ["trades", "book"])])
    >>> cfg.stream_jobs[0].depth
    25
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from dccd_actors.errors import ConfigError

__all__ = [
    "EXCHANGES",
    "AlertConfig",
    "CollectorConfig",
    "RemoteConfig",
    "RestartPolicy",
    "StorageConfig",
    "StreamJob",
    "load_config",
]

EXCHANGES: Final = ("binance", "bybit", "kraken", "okx", "bitfinex", "bitmex")
CHANNELS: Final = ("trades", "book")
COMPRESSIONS: Final = ("gzip", "lzf", "none")
ROTATIONS: Final = ("daily", "hourly")
_PAIR = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


def _fail(field_name: str, value: object, allowed: str) -> ConfigError:
    return ConfigError(f"{field_name}={value!r} is invalid: {allowed}")


def _number(
    field_name: str, value: object, low: float, high: float, *, low_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(
            field_name, value, f"expected a number in {'(' if low_open else '['}{low}, {high}]"
        )
    ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        raise _fail(
            field_name, value, f"expected a number in {'(' if low_open else '['}{low}, {high}]"
        )
    return float(value)


def _url(field_name: str, value: str | None, schemes: tuple[str, ...]) -> None:
    if value is None:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in schemes or not parts.hostname:
        raise _fail(
            field_name,
            value,
            f"expected a {'/'.join(schemes)} URL with a host, e.g. {schemes[0]}://127.0.0.1:8765",
        )
    if parts.query or parts.fragment:
        raise _fail(
            field_name,
            value,
            "give only scheme, host, port (and optional path); no query or fragment",
        )


@dataclass(frozen=True)
class StreamJob:
    """One venue and its pairs, channels and sampling.

    ``url``/``rest_url`` replace the venue's WebSocket and REST base (scheme, host,
    port); the adapter appends its usual path and subscriptions. Without ``rest_url``, a
    ``url`` on this machine implies REST on the same host and port.

    Example::

        >>> StreamJob("binance", ["BTC/USDT"], ["trades", "book"], time_step=1).pairs
        ('BTC/USDT',)
    """

    exchange: str
    pairs: Sequence[str]
    channels: Sequence[str] = ("trades", "book")
    time_step: float = 60
    depth: int = 25
    url: str | None = None
    rest_url: str | None = None

    def __post_init__(self) -> None:
        if self.exchange not in EXCHANGES:
            raise _fail("exchange", self.exchange, f"expected one of {', '.join(EXCHANGES)}")
        if isinstance(self.pairs, str) or not isinstance(self.pairs, Sequence) or not self.pairs:
            raise _fail("pairs", self.pairs, "expected a non-empty list of 'BASE/QUOTE' strings")
        for pair in self.pairs:
            if not isinstance(pair, str) or not _PAIR.match(pair.upper()):
                raise _fail(
                    "pairs",
                    pair,
                    "expected 'BASE/QUOTE' with letters and digits only, e.g. 'BTC/USDT'",
                )
        if (
            isinstance(self.channels, str)
            or not self.channels
            or any(c not in CHANNELS for c in self.channels)
        ):
            raise _fail(
                "channels", self.channels, f"expected a non-empty list from {list(CHANNELS)}"
            )
        _number("time_step", self.time_step, 0, 86_400, low_open=True)
        if (
            isinstance(self.depth, bool)
            or not isinstance(self.depth, int)
            or not 1 <= self.depth <= 1000
        ):
            raise _fail("depth", self.depth, "expected an integer in [1, 1000]")
        _url("url", self.url, ("wss", "ws"))
        _url("rest_url", self.rest_url, ("https", "http"))
        object.__setattr__(self, "pairs", tuple(dict.fromkeys(p.upper() for p in self.pairs)))
        object.__setattr__(self, "channels", tuple(dict.fromkeys(self.channels)))


@dataclass(frozen=True)
class RemoteConfig:
    """An rclone remote such as ``"s3:bucket/crypto"`` or ``"/mnt/backup"``."""

    remote: str
    provider: str = "rclone"

    def __post_init__(self) -> None:
        if not isinstance(self.remote, str) or not self.remote.strip():
            raise _fail(
                "remotes[].remote", self.remote, "expected an rclone remote such as 'gdrive:crypto'"
            )
        if self.provider != "rclone":
            raise _fail("remotes[].provider", self.provider, "only 'rclone' is supported")


@dataclass(frozen=True)
class StorageConfig:
    """Where and how data is written (``local_path``) and pushed (``remotes``)."""

    local_path: str | Path
    remotes: Sequence[RemoteConfig] = ()
    sync_interval: float = 3600
    flush_interval: float = 1.0
    rotation: str = "daily"
    compression: str = "gzip"
    keep_local_days: float | None = None
    raw: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.local_path, str | Path) or not str(self.local_path).strip():
            raise _fail("storage.local_path", self.local_path, "expected a folder path")
        object.__setattr__(self, "local_path", Path(self.local_path).expanduser())
        remotes = tuple(
            r if isinstance(r, RemoteConfig) else RemoteConfig(str(r)) for r in self.remotes
        )
        object.__setattr__(self, "remotes", remotes)
        _number("storage.sync_interval", self.sync_interval, 0, 10 * 86_400)
        _number("storage.flush_interval", self.flush_interval, 0, 60, low_open=True)
        if self.rotation not in ROTATIONS:
            raise _fail("storage.rotation", self.rotation, f"expected one of {list(ROTATIONS)}")
        if self.compression not in COMPRESSIONS:
            raise _fail(
                "storage.compression", self.compression, f"expected one of {list(COMPRESSIONS)}"
            )
        if self.keep_local_days is not None:
            _number("storage.keep_local_days", self.keep_local_days, 0, 100_000, low_open=True)


@dataclass(frozen=True)
class AlertConfig:
    """Webhook alerts (Slack/Discord-compatible) after repeated errors."""

    webhook_url: str | None = None
    max_consecutive_errors: int = 3

    def __post_init__(self) -> None:
        _url("alerts.webhook_url", self.webhook_url, ("https", "http"))
        if (
            isinstance(self.max_consecutive_errors, bool)
            or not isinstance(self.max_consecutive_errors, int)
            or self.max_consecutive_errors < 1
        ):
            raise _fail(
                "alerts.max_consecutive_errors",
                self.max_consecutive_errors,
                "expected an integer >= 1",
            )


@dataclass(frozen=True)
class RestartPolicy:
    """Supervision numbers (DESIGN.md §6); tests scale them down to milliseconds."""

    min_backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.2
    reset_after: float = 60.0
    max_restarts: int = 10
    restart_window: float = 600.0
    park_interval: float = 300.0
    stale_timeout: float = 60.0
    stop_timeout: float = 5.0
    storage_max_restarts: int = 3
    storage_window: float = 60.0
    seal_timeout: float = 300.0  # sealing a big daily segment on stop can take a while
    max_frame_bytes: int = 8 * 1024 * 1024
    connects_per_second: int = 5
    backlog_warning: int = 1000
    max_inflight_frames: int = 20_000  # per stream; above it the reader stops reading
    handoff_interval: float = 0.1  # frames read are handed to each stream at most this often

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            _number(f"policy.{f.name}", value, 0, 1e9, low_open=f.name != "jitter")


@dataclass(frozen=True)
class CollectorConfig:
    """Everything a :class:`~dccd_actors.Collector` needs."""

    storage: StorageConfig
    stream_jobs: Sequence[StreamJob] = ()
    alerts: AlertConfig = field(default_factory=AlertConfig)
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    log_file: bool = False  # also log to {local_path}/.dccd/dccd_actors.log (10 MB x 5)

    def __post_init__(self) -> None:
        if not isinstance(self.storage, StorageConfig):
            raise _fail("storage", self.storage, "expected a StorageConfig")
        jobs = tuple(self.stream_jobs)
        if any(not isinstance(j, StreamJob) for j in jobs):
            raise _fail("stream_jobs", self.stream_jobs, "expected a list of StreamJob")
        seen: set[tuple[str, str]] = set()
        for job in jobs:
            for pair in job.pairs:
                if (job.exchange, pair) in seen:
                    raise _fail(
                        "stream_jobs",
                        f"{job.exchange} {pair}",
                        "each (exchange, pair) may appear only once",
                    )
                seen.add((job.exchange, pair))
        object.__setattr__(self, "stream_jobs", jobs)


# -- YAML --------------------------------------------------------------------------------


def load_config(path: str | Path) -> CollectorConfig:
    """Read a dccd YAML config (``storage``, ``remotes``, ``sync_interval``, ``stream_jobs``, ``alerts``).

    ``histo_jobs`` are not supported: a warning says so and they are ignored.

    Example::

        >>> cfg = load_config("config.yml")   # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"config file {path} must be a YAML mapping with 'storage' and 'stream_jobs'"
        )
    return config_from_dict(raw)


def config_from_dict(raw: Mapping[str, Any]) -> CollectorConfig:
    """Build a :class:`CollectorConfig` from dccd's YAML structure."""
    _warn_unknown(
        "config",
        raw,
        {
            "storage",
            "remotes",
            "sync_interval",
            "stream_jobs",
            "histo_jobs",
            "alerts",
            "policy",
            "log_file",
            "log_level",
            "logging",
        },
    )
    if raw.get("histo_jobs"):
        warnings.warn(
            "histo_jobs are not supported by dccd_actors and are ignored", UserWarning, stacklevel=3
        )
    storage_raw = raw.get("storage")
    if not isinstance(storage_raw, Mapping):
        raise _fail("storage", storage_raw, "expected a mapping with at least local_path")
    storage_kw = dict(storage_raw)
    for key in ("remotes", "sync_interval"):  # dccd accepted both places
        if key in raw and key not in storage_kw:
            storage_kw[key] = raw[key]
    _warn_unknown("storage", storage_kw, {f.name for f in fields(StorageConfig)})
    storage_kw["remotes"] = [_remote(r) for r in storage_kw.get("remotes") or []]
    storage = StorageConfig(
        **{k: v for k, v in storage_kw.items() if k in {f.name for f in fields(StorageConfig)}}
    )
    jobs_raw = raw.get("stream_jobs") or []
    if not isinstance(jobs_raw, list):
        raise _fail("stream_jobs", jobs_raw, "expected a list of jobs")
    jobs = [_job(i, j) for i, j in enumerate(jobs_raw)]
    alerts_raw = raw.get("alerts") or {}
    if not isinstance(alerts_raw, Mapping):
        raise _fail("alerts", alerts_raw, "expected a mapping")
    _warn_unknown("alerts", alerts_raw, {f.name for f in fields(AlertConfig)})
    alerts = AlertConfig(
        **{k: v for k, v in alerts_raw.items() if k in {f.name for f in fields(AlertConfig)}}
    )
    policy_raw = raw.get("policy") or {}
    if not isinstance(policy_raw, Mapping):
        raise _fail("policy", policy_raw, "expected a mapping")
    _warn_unknown("policy", policy_raw, {f.name for f in fields(RestartPolicy)})
    policy = RestartPolicy(
        **{k: v for k, v in policy_raw.items() if k in {f.name for f in fields(RestartPolicy)}}
    )
    log_file = raw.get("log_file", False)
    if not isinstance(log_file, bool):
        raise _fail("log_file", log_file, "expected true or false")
    return CollectorConfig(
        storage=storage, stream_jobs=jobs, alerts=alerts, policy=policy, log_file=log_file
    )


def _remote(raw: object) -> RemoteConfig:
    if isinstance(raw, str):
        return RemoteConfig(raw)
    if isinstance(raw, Mapping) and "remote" in raw:
        return RemoteConfig(str(raw["remote"]), str(raw.get("provider", "rclone")))
    raise _fail("remotes[]", raw, "expected {remote: 'name:path'} or a string")


def _job(index: int, raw: object) -> StreamJob:
    if not isinstance(raw, Mapping):
        raise _fail(
            f"stream_jobs[{index}]", raw, "expected a mapping with exchange, pairs, channels"
        )
    known = {f.name for f in fields(StreamJob)}
    _warn_unknown(f"stream_jobs[{index}]", raw, known)
    for required in ("exchange", "pairs"):
        if required not in raw:
            raise _fail(f"stream_jobs[{index}].{required}", None, "this field is required")
    try:
        return StreamJob(**{k: v for k, v in raw.items() if k in known})
    except ConfigError as exc:
        raise ConfigError(f"stream_jobs[{index}].{exc}") from None


def _warn_unknown(section: str, raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        warnings.warn(f"{section}: unknown keys {unknown} ignored", UserWarning, stacklevel=4)
