"""The kinds of JSON value mParticle's batch schema uses, as small composable checks.

Each check is ``check(value, path, report)``: it adds a :class:`Problem` to
``report`` for every way ``value`` breaks the rule, and nothing otherwise. The
kinds mirror the schema's own definitions (``String`` accepts any scalar,
``Integer`` and ``Number`` accept null, objects without a declared ``type``
let any non-object through, ...) so that an error here is exactly a value the
schema rejects; what the schema lets through but mParticle's documentation
says otherwise is a warning. :mod:`.validation` and :mod:`.events` build the
batch rules from these pieces.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Callable, Final, Optional

#: ``{"path", "rule", "message", "severity"}``; severity is ``error``, ``warning`` or ``info``.
Problem = dict[str, str]

ERROR: Final = "error"
WARNING: Final = "warning"
INFO: Final = "info"

_IDENTIFIER: Final = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
# The schema's Uuid pattern, used with re.search exactly as a JSON Schema validator does.
_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Report:
    """Collects the problems of one batch, in the order they are found."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, severity: str, path: str, rule: str, message: str) -> None:
        self.problems.append({"path": path, "rule": rule, "message": message, "severity": severity})

    def error(self, path: str, rule: str, message: str) -> None:
        self.add(ERROR, path, rule, message)

    def warning(self, path: str, rule: str, message: str) -> None:
        self.add(WARNING, path, rule, message)

    def info(self, path: str, rule: str, message: str) -> None:
        self.add(INFO, path, rule, message)


Check = Callable[[Any, str, Report], None]


def child(path: str, key: object) -> str:
    """JSONPath of ``path``'s member ``key``: ``$.events[0].data["odd key"]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    return f"{path}.{text}" if _IDENTIFIER.match(text) else f"{path}[{json.dumps(text, ensure_ascii=False)}]"


def json_type(value: object) -> str:
    """A value's kind in JSON's words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


def is_integer(value: object) -> bool:
    """JSON Schema draft 7's integer: no booleans, and 2.0 counts."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_error(report: Report, path: str, value: object, wanted: str) -> None:
    report.error(path, "schema.type", f"must be {wanted}, not {json_type(value)}")


# --- scalars ------------------------------------------------------------------


def scalar(value: Any, path: str, report: Report) -> None:
    """The schema's ``String``: a string, number, boolean or null (never an object or array)."""
    if not is_scalar(value):
        _type_error(report, path, value, "a string, number, boolean or null")


def string(value: Any, path: str, report: Report) -> None:
    """``{"type": "string"}``: a JSON string, not null."""
    if not isinstance(value, str):
        _type_error(report, path, value, "a string")


def integer(value: Any, path: str, report: Report) -> None:
    """The schema's ``Integer``: an integer or null (numeric strings fail)."""
    if value is not None and not is_integer(value):
        _type_error(report, path, value, "an integer or null")


def number(value: Any, path: str, report: Report) -> None:
    """The schema's ``Number``: a number or null."""
    if value is not None and not is_number(value):
        _type_error(report, path, value, "a number or null")


def boolean(value: Any, path: str, report: Report) -> None:
    """The schema's ``Boolean``: true, false or null."""
    if value is not None and not isinstance(value, bool):
        _type_error(report, path, value, "true, false or null")


def uuid(value: Any, path: str, report: Report) -> None:
    """The schema's ``Uuid``: null or a string of the 8-4-4-4-12 hex form."""
    if value is None:
        return
    if not isinstance(value, str):
        _type_error(report, path, value, "a UUID string or null")
    elif not _UUID.search(value):
        report.error(path, "schema.pattern", f"{value!r} is not a UUID (8-4-4-4-12 hexadecimal digits)")


def enum(values: Collection[str], what: str = "") -> Check:
    """``{"type": "string", "enum": [...]}``: one of ``values`` exactly (case matters)."""
    listed = ", ".join(values)

    def check(value: Any, path: str, report: Report) -> None:
        if not isinstance(value, str) or value not in values:
            shown = json.dumps(value, ensure_ascii=False) if is_scalar(value) else json_type(value)
            report.error(path, "schema.enum", f"{shown} is not {what or 'one of'}: {listed}")

    return check


def documented_enum(values: Collection[str], source: str) -> Check:
    """A ``String`` whose documented values the schema does not enforce: other values warn."""

    def check(value: Any, path: str, report: Report) -> None:
        scalar(value, path, report)
        if isinstance(value, str) and value not in values:
            report.warning(
                path,
                "docs.enum",
                f"{value!r} is not one of the values {source} documents ({', '.join(values)}); "
                "the schema does not check it",
            )

    return check


def ip_address(value: Any, path: str, report: Report) -> None:
    """The batch ``ip``: ``oneOf`` ipv4 / ipv6, each ``string|null`` with that format."""
    if value is None:
        # Null matches both alternatives, and oneOf wants exactly one.
        report.error(path, "schema.one_of", "may not be null (null fits both the ipv4 and ipv6 forms)")
        return
    if not isinstance(value, str):
        _type_error(report, path, value, "an IPv4 or IPv6 address string")
        return
    if not (_is_ipv4(value) or _is_ipv6(value)):
        report.error(path, "schema.format", f"{value!r} is not an IPv4 or IPv6 address")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return not getattr(address, "scope_id", None)


def string_or_array(value: Any, path: str, report: Report) -> None:
    """The schema's ``StringOrArray``: a scalar, or an array of scalars (user attribute values)."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            if not is_scalar(item):
                _type_error(report, child(path, index), item, "a string, number, boolean or null")
    elif not is_scalar(value):
        _type_error(report, path, value, "a scalar or an array of scalars")


# --- containers ---------------------------------------------------------------


def both(*checks: Check) -> Check:
    """Every one of ``checks`` (the schema's ``allOf``, or a schema rule plus a documented limit)."""

    def check(value: Any, path: str, report: Report) -> None:
        for each in checks:
            each(value, path, report)

    return check


def array_of(item: Check, *, nullable: bool = True) -> Check:
    """``{"type": ["array", "null"], "items": item}`` (``nullable=False``: just ``array``)."""

    def check(value: Any, path: str, report: Report) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, list):
            _type_error(report, path, value, "an array or null" if nullable else "an array")
            return
        for index, element in enumerate(value):
            item(element, child(path, index), report)

    return check


def map_of(item: Check, *, nullable: bool = True) -> Check:
    """``{"type": ["object", "null"], "additionalProperties": item}``: any keys, checked values."""

    def check(value: Any, path: str, report: Report) -> None:
        if value is None and nullable:
            return
        if not isinstance(value, dict):
            _type_error(report, path, value, "an object or null" if nullable else "an object")
            return
        for key, element in value.items():
            item(element, child(path, key), report)

    return check


#: A record's own extra check, run on the object after its fields.
Extra = Callable[[dict[str, Any], str, Report], None]


class Record:
    """An object with named fields, as the schema describes one.

    :param name: the schema definition's name, for messages.
    :param fields: each known field's check.
    :param required: fields that must be present.
    :param closed: ``additionalProperties: false``: other fields are errors
        (otherwise they are warnings: the schema allows them, the docs list no such field).
    :param typed: ``"object"`` or ``"object|null"`` when the schema declares a type;
        ``None`` when it does not, in which case a non-object passes (with a warning).
    :param extra: further checks, e.g. mParticle's documented limits.
    """

    def __init__(
        self,
        name: str,
        fields: Mapping[str, Check],
        *,
        required: Collection[str] = (),
        closed: bool = False,
        typed: Optional[str] = None,
        extra: Collection[Extra] = (),
    ) -> None:
        self.name = name
        self.fields = dict(fields)
        self.required = tuple(required)
        self.closed = closed
        self.typed = typed
        self.extra = tuple(extra)

    def __call__(self, value: Any, path: str, report: Report) -> None:
        if not isinstance(value, dict):
            self._not_an_object(value, path, report)
            return
        for name in self.required:
            if name not in value:
                report.error(path, "schema.required", f"{self.name} requires {name!r}")
        for key, element in value.items():
            check = self.fields.get(key)
            if check is not None:
                check(element, child(path, key), report)
            elif self.closed:
                report.error(
                    child(path, key),
                    "schema.additional_property",
                    f"{key!r} is not a field of {self.name}, which allows no others",
                )
            else:
                report.warning(
                    child(path, key),
                    "docs.unknown_field",
                    f"{key!r} is not a documented field of {self.name}; the schema lets it through",
                )
        for more in self.extra:
            more(value, path, report)

    def _not_an_object(self, value: Any, path: str, report: Report) -> None:
        if value is None and self.typed != "object":
            return
        if self.typed is not None:
            wanted = "an object or null" if self.typed == "object|null" else "an object"
            _type_error(report, path, value, wanted)
        else:
            report.warning(
                path,
                "docs.object",
                f"{self.name} should be an object, not {json_type(value)}; the schema does not check "
                "its type, so this passes but carries nothing",
            )

