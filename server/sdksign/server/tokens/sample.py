"""Zoom's sample auth endpoint (meetingsdk-auth-endpoint-sample v3.12.0): its JSON body read
into a SignRequest by the sample's own rules, and every answer written in its shapes.

The sample checks a body in this order and reports every broken rule at once, each as
{"property", "reason"}: `meetingNumber` and `role` both present or both absent (the
property "$schema"), then `role`, `expirationSeconds` and `videoWebRtcMode`, each a
number or a string that it turns into one (parseInt). Any key present counts, null
included (JSON has no undefined). We keep those rules and statuses, and are stricter
where the sample's leniency would mint something nobody meant (docs/gateway.md lists
each case): a numeric string is an integer and nothing after it ("1abc" is no 1), a
lifetime is whole seconds, a meeting number is digits, the body a JSON object.

Pure: bytes in, a SignRequest or InvalidArgument out; an error in, JSON bytes out.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeGuard

from sdksign.v1 import signature_service_pb2 as pb

from ..errors import FieldViolation, InvalidArgument, RequestError
from ..zoom.rules import (
    MAX_TTL,
    MEETING_NUMBER_RULE,
    MIN_TTL,
    ROLE_OF_CLAIM,
    is_meeting_number,
)

JSON_TYPE = "application/json"
# The properties the sample names: the body itself is ours (the sample's body errors come
# from Express, as HTML); "$schema" is the sample's own name for its all-or-none rule.
BODY, SCHEMA = "$body", "$schema"
MEETING_NUMBER, ROLE, EXPIRATION, VIDEO_MODE, APP = (
    "meetingNumber",
    "role",
    "expirationSeconds",
    "videoWebRtcMode",
    "app",
)
# A JSON number beyond this has lost digits before we see it.
MAX_EXACT = 2**53
# What the sample's parseInt takes of a string and we take whole: an optional sign and
# digits, spaces around.
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")

# Sign's fields -> the sample's JSON names, for the violations Sign itself reports.
SAMPLE_FIELDS = {
    "meeting.meeting_number": MEETING_NUMBER,
    "meeting.role": ROLE,
    "meeting.video_webrtc_mode": VIDEO_MODE,
    "ttl": EXPIRATION,
    "app": APP,
}
# A refusal's rule (access.policy) -> the property it is about; others name the request.
REFUSED_PROPERTY = {
    "role": ROLE,
    "ttl": EXPIRATION,
    "meeting": MEETING_NUMBER,
    "app": APP,
}
REQUEST = "$request"


def sign_request(content_type: str, data: bytes) -> pb.SignRequest:
    """The SignRequest for the sample's body `data`; InvalidArgument naming every broken rule
    by the sample's JSON names, in the sample's order."""
    body = _json_object(content_type, data)
    violations: list[FieldViolation] = []
    if (MEETING_NUMBER in body) != (ROLE in body):
        violations.append(
            FieldViolation(
                SCHEMA,
                f"{MEETING_NUMBER} and {ROLE} go together: send both (a web token) or neither "
                "(a native SDK token)",
            )
        )
    role = _integer(body, ROLE, violations, (0, 1), "0 (participant) or 1 (host)")
    ttl = _integer(
        body, EXPIRATION, violations, range(MIN_TTL, MAX_TTL + 1), f"{MIN_TTL} to {MAX_TTL}"
    )
    mode = _integer(body, VIDEO_MODE, violations, (0, 1), "0 or 1")
    number = _meeting_number(body, violations)
    app = body.get(APP, "")
    if not isinstance(app, str):
        violations.append(FieldViolation(APP, "must be a string: a configured meeting app's name"))
    if violations:
        raise InvalidArgument(violations)
    request = pb.SignRequest(app=app)
    request.meeting.SetInParent()  # {}: a native token, with neither number nor role
    if role is not None and number:
        request.meeting.meeting_number = number
        request.meeting.role = ROLE_OF_CLAIM[role]
    if mode is not None:
        request.meeting.video_webrtc_mode = bool(mode)
    if ttl is not None:
        request.ttl.seconds = ttl
    return request


def _json_object(content_type: str, data: bytes) -> dict[str, Any]:
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != JSON_TYPE:
        raise InvalidArgument([FieldViolation(BODY, f"must be {JSON_TYPE}")])
    if not data:
        return {}  # Express's JSON parser reads no body as {}: the sample mints a native token
    try:
        body = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        where = f" at character {error.pos}" if isinstance(error, json.JSONDecodeError) else ""
        raise InvalidArgument([FieldViolation(BODY, f"is not JSON{where}")]) from None
    if not isinstance(body, dict):
        raise InvalidArgument(
            [FieldViolation(BODY, f"must be a JSON object, not {_json_type(body)}")]
        )
    return body


def _no_constant(name: str) -> Any:
    """NaN and Infinity, which Python's json reads and JSON does not have."""
    raise ValueError(f"{name} is not JSON")


def _integer(
    body: dict[str, Any],
    name: str,
    violations: list[FieldViolation],
    allowed: tuple[int, ...] | range,
    says: str,
) -> int | None:
    """`body[name]` as an integer in `allowed` (None when absent); a violation if it is not."""
    if name not in body:
        return None
    value = body[name]
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        value = int(value)
    number = value if _is_number(value) else None
    if number is None or number != int(number):
        kind = "a fraction" if number is not None else _json_type(value)
        violations.append(
            FieldViolation(name, f"must be {says}, as a number or a numeric string; got {kind}")
        )
        return None
    if int(number) not in allowed:
        violations.append(FieldViolation(name, f"must be {says}; got {int(number)}"))
        return None
    return int(number)


def _meeting_number(body: dict[str, Any], violations: list[FieldViolation]) -> str:
    """meetingNumber as a JSON number or a string of digits ("" when absent or bad)."""
    value = body.get(MEETING_NUMBER)
    if value is None and MEETING_NUMBER not in body:
        return ""
    if isinstance(value, str) and is_meeting_number(value.strip()):
        return value.strip()
    if _is_number(value) and value == int(value) and value >= 0:
        if value < MAX_EXACT:
            return str(int(value))
        violations.append(
            FieldViolation(MEETING_NUMBER, "is too large for a JSON number: send it as a string")
        )
        return ""
    violations.append(
        FieldViolation(MEETING_NUMBER, f"must be a number or a string of {MEETING_NUMBER_RULE}")
    )
    return ""


def _is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number we can hold: not a bool, and finite (Python's json reads 1e400 as inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string that is no integer"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a number too large"  # finite numbers are answered before: only 1e400 and such


def answer(signature: str, sdk_key: str) -> bytes:
    """The sample's answer: {"signature", "sdkKey"}, compact as Express writes it."""
    return _compact({"signature": signature, "sdkKey": sdk_key})


def errors(error: RequestError) -> bytes:
    """`error` in the sample's shape, {"errors": [{"property", "reason"}]}, by JSON names."""
    if error.violations:
        items = [
            {"property": SAMPLE_FIELDS.get(v.field, v.field) or BODY, "reason": v.description}
            for v in error.violations
        ]
    else:
        rule = getattr(error, "rule", "")
        items = [{"property": REFUSED_PROPERTY.get(rule, REQUEST), "reason": error.message}]
    return _compact({"errors": items})


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
