"""The Alertmanager sections of the rule files as one Alertmanager configuration (YAML).

`GET /api/v2/status` answers it as `config.original`, where Grafana's
Alertmanager data source shows an external Alertmanager's routing tree and
receivers. The sections are given as written (secrets are `${ENV}` references
or `*_file` paths there); a literal value under a key that names a secret
(passwords, keys, tokens, a Slack `api_url`, a webhook's `url`) is shown as
`<secret>`, as Alertmanager shows its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

SECTIONS = ("route", "receivers", "inhibit_rules", "time_intervals", "mute_time_intervals")
_SECRET = re.compile(r"password|secret|token|_key$|^key$|credentials")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
MASK = "<secret>"


def alertmanager_config(files: Iterable[Mapping[str, Any]]) -> str:
    """The sections of every file (lists joined in file order; the one `route`), as YAML."""
    merged: dict[str, Any] = {}
    for data in files:
        for section in SECTIONS:
            value = data.get(section)
            if value is None:
                continue
            if section == "route":
                merged.setdefault(section, value)
            elif isinstance(value, list):
                merged.setdefault(section, []).extend(value)
    if not merged:
        return ""
    ordered = {section: merged[section] for section in SECTIONS if section in merged}
    return yaml.safe_dump(_masked(ordered), sort_keys=False, allow_unicode=True)


def _masked(value: Any, within: str = "") -> Any:
    if isinstance(value, Mapping):
        return {key: _mask(str(key), item, within) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item, within) for item in value]
    return value


def _mask(key: str, value: Any, within: str) -> Any:
    """`within`: the list of integrations the value is in (a webhook's URL is its secret)."""
    secret = (
        _SECRET.search(key.lower())
        or key == "api_url"
        or (key == "url" and within == "webhook_configs")
    )
    if isinstance(value, str) and not key.endswith("_file") and secret:
        return value if _REFERENCE.fullmatch(value) else MASK
    if key == "headers" and isinstance(value, Mapping):  # Authorization and the like
        return {name: MASK if not _REFERENCE.fullmatch(str(v)) else v for name, v in value.items()}
    return _masked(value, key if key.endswith("_configs") else within)
