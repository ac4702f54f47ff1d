"""Secrets in receiver configurations: `${ENV}` in a value, or `<key>_file` naming a file.

Rule files live in git; the secrets they need do not. A value may name
environment variables (`${PAGERDUTY_KEY}`), and any key may instead be given
as `<key>_file`, a file whose contents (stripped) are the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from correlator.config import ConfigError, expand_env


def secret(config: dict[str, Any], key: str) -> str:
    """`config[key]` with its variables expanded, else the contents of `config[key_file]`."""
    try:
        if key in config:
            return expand_env(str(config[key]))
        path = config.get(f"{key}_file")
        if path is None:
            return ""
        return Path(expand_env(str(path))).read_text().strip()
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise ValueError(f"{key}_file {config.get(f'{key}_file')}: {exc.strerror}") from None
