"""Reading settings from the environment: small typed readers that refuse nonsense loudly.

Every settings module uses them: the project's (``ocl_export/settings.py``) and each feature's own
``conf.py``. With no environment at all the service runs in its embedded mode, its state under
``VAR_DIR`` (``var/`` beside the code unless ``OCL_VAR_DIR`` says otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

VAR_DIR = Path(os.environ.get("OCL_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))


def env_str(name: str, default: str) -> str:
    """A string setting; ``NAME_FILE`` (a path) wins over ``NAME``, for secrets."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw in ("True", "true", "1", "yes"):
        return True
    if raw in ("False", "false", "0", "no"):
        return False
    raise ImproperlyConfigured(f"{name} must be True or False, not {raw!r}")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from exc
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_float(name: str, default: float | None) -> float | None:
    """A positive number; set but empty means none (the other side's own default)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from exc
    if not value > 0:
        raise ImproperlyConfigured(f"{name} must be more than 0, not {raw!r}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int_list(name: str, default: str, minimum: int = 0) -> list[int]:
    """Comma-separated whole numbers, each at least ``minimum``."""
    items = env_list(name, default)
    try:
        values = [int(item) for item in items]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be comma-separated whole numbers, not {items!r}") from exc
    if any(value < minimum for value in values):
        raise ImproperlyConfigured(f"{name} must hold numbers of at least {minimum}, not {values!r}")
    return values


def env_base_url(name: str) -> str:
    """``scheme://host[:port]`` without a trailing slash, or empty; nothing after the host."""
    raw = env_str(name, "").strip().rstrip("/")
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"{name} must be a scheme and a host, like https://ocl.example.org, not {raw!r}")
    return raw
