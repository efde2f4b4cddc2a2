"""mParticle's documented size and count limits on names and attributes, as warnings.

The JSON Schema has none of these (no ``maxLength``, no ``maxProperties``), so
a batch over them is valid by the schema; mParticle's "default service limits"
page says server-to-server data over a name limit is truncated and that going
over the others "may result in a failed request". Each is therefore reported
as a warning, and a value exactly at a limit as ``info``: the library (or any
sender) cuts values to the limit, so that is usually a sign something was cut.
Numbers follow ``shared/spec/wire.md`` "Limits".
"""

from __future__ import annotations

from typing import Any, Final

from .kinds import Report, child

MAX_NAME_LENGTH: Final = 256
MAX_VALUE_LENGTH: Final = 4096
MAX_ATTRIBUTES: Final = 100
MAX_LIST_ENTRIES: Final = 1000
MAX_LIST_ENTRY_LENGTH: Final = 512
#: ``push_message`` ``action_identifier`` (mParticle's JSON reference).
MAX_ACTION_IDENTIFIER_LENGTH: Final = 100


def check_name(value: Any, path: str, report: Report, what: str = "event name") -> None:
    """An event, screen or attribute name: over 256 characters mParticle truncates it."""
    _check_text(value, path, report, MAX_NAME_LENGTH, what, "limit.name_length")


def check_attributes(values: Any, path: str, report: Report, what: str, *, lists: bool = False) -> None:
    """An attribute map (event ``custom_attributes`` or ``user_attributes``) against the limits."""
    if not isinstance(values, dict):
        return
    if len(values) > MAX_ATTRIBUTES:
        report.warning(
            path,
            "limit.attribute_count",
            f"{len(values):,} {what}; mParticle allows {MAX_ATTRIBUTES} and may fail or cut the rest",
        )
    for name, value in values.items():
        where = child(path, name)
        check_name(name, where, report, "attribute name")
        if lists and isinstance(value, list):
            _check_list(value, where, report)
        else:
            _check_text(value, where, report, MAX_VALUE_LENGTH, "attribute value", "limit.value_length")


def _check_list(values: list[Any], path: str, report: Report) -> None:
    _check_size(len(values), path, report, MAX_LIST_ENTRIES, "list", "entries", "limit.list_length")
    for index, value in enumerate(values):
        where = child(path, index)
        _check_text(value, where, report, MAX_LIST_ENTRY_LENGTH, "list entry", "limit.list_entry_length")


def _check_text(value: Any, path: str, report: Report, limit: int, what: str, rule: str) -> None:
    if isinstance(value, str):
        _check_size(len(value), path, report, limit, what, "characters", rule)


def _check_size(size: int, path: str, report: Report, limit: int, what: str, unit: str, rule: str) -> None:
    """Over ``limit``: a warning (mParticle cuts or refuses); exactly at it: a note (likely cut already)."""
    if size > limit:
        report.warning(path, rule, f"{what} has {size:,} {unit}; mParticle's limit is {limit:,}")
    elif size == limit:
        report.info(path, "limit.at_limit", f"{what} has exactly {limit:,} {unit}: likely cut")


def check_action_identifier(value: Any, path: str, report: Report) -> None:
    """``push_message`` ``action_identifier``: 100 characters at most."""
    if isinstance(value, str) and len(value) > MAX_ACTION_IDENTIFIER_LENGTH:
        report.warning(
            path,
            "limit.value_length",
            f"action_identifier is {len(value):,} characters; the limit is {MAX_ACTION_IDENTIFIER_LENGTH}",
        )
