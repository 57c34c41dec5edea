"""The ``diagnosis.json`` contract: validate a diagnosis document and write it.

The shape is ``diagnosis.schema.json`` (JSON Schema draft 2020-12) next to this module; the
checks a schema cannot express are made here: only JSON types and finite numbers, causes sorted
by probability, probabilities that sum to 1.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

from runbook.errors import RunbookError

SCHEMA_PATH = Path(__file__).with_name("diagnosis.schema.json")

# Posterior probabilities and priors are distributions; allow for rounding when they are shown.
PROBABILITY_SUM_TOLERANCE = 0.01

_MAX_MESSAGE = 240

# RFC 3339 section 5.6 date-time, the meaning of JSON Schema's "date-time" format: a time zone
# offset is required, so the timestamp is unambiguous for whoever reads the postmortem.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$"
)


def _is_date_time(value: object) -> bool:
    # Own checker: jsonschema validates "date-time" only when an optional package is installed.
    if not isinstance(value, str):
        return True  # "type" reports non-strings
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper())  # month 13, Feb 30...
    except ValueError:
        return False
    return True


@cache
def diagnosis_schema() -> dict[str, Any]:
    """Return the diagnosis.json JSON Schema (parsed once)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _fast_validator():
    # fastjsonschema (nbformat's own validator) compiles the schema once and imports in
    # milliseconds; jsonschema's import costs over a second in every kernel (its optional
    # IRI format checker builds a grammar), so it is only loaded to explain a failure.
    return fastjsonschema.compile(diagnosis_schema(), formats={"date-time": _is_date_time})


def validate_diagnosis(doc: dict) -> None:
    """Check ``doc`` against the diagnosis.json contract; return ``None`` when it holds.

    Raises ``RunbookError`` whose message names the failing path (``ranked_causes[2].prior``)
    and the problem; a schema violation is chained from jsonschema's ``ValidationError``
    (``err.__cause__``). Beyond the schema: every value must be a JSON type and every number
    finite, ``ranked_causes`` must be sorted by probability (highest first), and probabilities
    and priors must each sum to 1 within ``PROBABILITY_SUM_TOLERANCE``.
    """
    _check_json_values(doc, [])
    try:
        _fast_validator()(doc)
    except fastjsonschema.JsonSchemaValueException:
        _explain_schema_violation(doc)

    causes = doc["ranked_causes"]
    for i in range(1, len(causes)):
        if causes[i]["probability"] > causes[i - 1]["probability"]:
            raise RunbookError(
                f"diagnosis.json invalid at ranked_causes[{i}].probability: "
                f"{causes[i]['probability']} is above ranked_causes[{i - 1}].probability "
                f"{causes[i - 1]['probability']}; sort ranked_causes by probability, highest first"
            )
    for key in ("probability", "prior"):
        total = math.fsum(cause[key] for cause in causes)
        if abs(total - 1) > PROBABILITY_SUM_TOLERANCE:
            raise RunbookError(
                f"diagnosis.json invalid at ranked_causes[*].{key}: "
                f"sums to {total:.6g}, not 1; normalize them"
            )


def write_diagnosis_json(doc: dict, path: str | os.PathLike) -> Path:
    """Validate ``doc`` and write it to ``path`` as UTF-8 JSON, indented by 2; return the path.

    The directory is created if needed and the file is replaced atomically, so a reader never
    sees half a document. Raises ``RunbookError`` (see ``validate_diagnosis``) before writing
    anything when ``doc`` breaks the contract.
    """
    validate_diagnosis(doc)
    path = Path(path)
    text = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, text.encode("utf-8"))


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename, so a
    reader sees the old file or the new one, never half of one. Mode as ``open`` would give
    (0666 less the umask), not mkstemp's 0600: the outputs are meant to be shared."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _explain_schema_violation(doc: dict) -> None:
    """Raise RunbookError naming the most specific schema violation in ``doc``."""
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import best_match

    formats = FormatChecker(formats=())
    formats.checks("date-time")(_is_date_time)
    errors = list(Draft202012Validator(diagnosis_schema(), format_checker=formats).iter_errors(doc))
    if not errors:  # the two validators disagree: report it rather than pass silently
        raise RunbookError("diagnosis.json invalid: rejected by the schema (no detail available)")
    # The deepest error is the most specific ("'dns' is not one of [...]" rather than
    # "no item has cause 'heartbeat'" for the same mistake); best_match breaks ties.
    depth = max(len(e.absolute_path) for e in errors)
    error = best_match(e for e in errors if len(e.absolute_path) == depth)
    raise RunbookError(
        f"diagnosis.json invalid at {_format_path(error.absolute_path)}: {_describe(error)}"
    ) from error


def _check_json_values(value: Any, path: list[str | int]) -> None:
    """Reject what JSON cannot hold, which jsonschema would otherwise let through (NaN) or
    report confusingly (a numpy integer "is not of type 'integer'")."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise RunbookError(
                    f"diagnosis.json invalid at {_format_path(path)}: key {key!r} is not a string"
                )
            _check_json_values(item, [*path, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_values(item, [*path, i])
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RunbookError(
                f"diagnosis.json invalid at {_format_path(path)}: {value} is not a finite number"
            )
    elif not (value is None or isinstance(value, (str, int, bool))):
        raise RunbookError(
            f"diagnosis.json invalid at {_format_path(path)}: "
            f"{type(value).__name__} is not a JSON type; convert it to str, int, float, "
            f"bool, None, list or dict"
        )


def _format_path(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def _describe(error) -> str:
    if error.validator == "contains":
        # The default message repeats the whole array; name the missing member instead.
        (field, spec), = error.schema["contains"]["properties"].items()
        return f"no item has {field} {spec['const']!r}; list each one exactly once"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message
