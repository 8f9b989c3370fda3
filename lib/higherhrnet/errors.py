"""Errors shared by every layer: a configuration that cannot work, named by key and source."""
from __future__ import annotations

__all__ = ["ConfigError", "ConfigWarning", "expect_len"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and its source."""


class ConfigWarning(UserWarning):
    """A configuration key is set to a value that has no effect here."""


def expect_len(value, n: int, key: str, by: str, source: str) -> None:
    """ConfigError unless the list `value` of config key `key` has the `n` entries that `by` says."""
    if len(value) != n:
        raise ConfigError(f"{source}: {key} has {len(value)} entries but {by} says {n}: {list(value)}")
