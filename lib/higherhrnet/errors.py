"""Errors shared by every layer: a configuration that cannot work, named by key and source; the base of errors
that keep their one-line message when a DataLoader worker raised them."""
from __future__ import annotations

__all__ = ["ConfigError", "ConfigWarning", "OneLineError", "expect_len"]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and its source."""


class OneLineError(ValueError):
    """Base of errors whose message is all a user needs (a bad image, a bad data set), also when raised in a
    torch DataLoader worker process.

    The DataLoader re-raises a worker's error in the main process as type(error)(text), the text being "Caught
    <type> in DataLoader worker process <n>." and the worker's whole traceback, which ends with the error's
    own line; such an error keeps only its own message, so that it reads the same with and without loader
    processes.
    """

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str):
            args = (_message_from_worker(args[0], type(self)),)
        super().__init__(*args)


def _message_from_worker(text: str, kind: type) -> str:
    """The message of the `kind` error at the end of a DataLoader worker's traceback text; other text as it is."""
    if not (text.startswith(f"Caught {kind.__name__} ") and "\nOriginal Traceback" in text):
        return text
    last_line = f"\n{kind.__module__}.{kind.__qualname__}: "
    at = text.rfind(last_line)
    return text if at < 0 else text[at + len(last_line):].rstrip("\n")


class ConfigWarning(UserWarning):
    """A configuration key is set to a value that has no effect here."""


def expect_len(value, n: int, key: str, by: str, source: str | None) -> None:
    """ConfigError unless the list `value` of config key `key` has the `n` entries that `by` says; the message
    starts with `source` (the config's name) unless it is None."""
    if len(value) != n:
        prefix = "" if source is None else f"{source}: "
        raise ConfigError(f"{prefix}{key} has {len(value)} entries but {by} says {n}: {list(value)}")
