"""Anonymous bad headers, queries and bodies through the real Envoy (harness/fleet.py's Fleet of
2 replicas), good calls among them: every answer counted by what the client got. Target: no
5xx, no gRPC INTERNAL, UNKNOWN or UNAVAILABLE (not even with a 4xx), every 4xx of POST / in
Zoom's sample's error shape, no hung call, not one replica ejected, and every good call OK.
What each bad input gets is in docs/gateway.md."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
import re
import string
import struct
from collections import Counter
from collections.abc import Callable

from harness.fleet import Fleet
from sdksign.v1 import signature_service_pb2 as pb

from .common import HUNG, MEETING, OK, SIGN, TRANSPORT, Row, Soak
from .server import scenario_config

CONCURRENCY = 8
# Requests sent in a full run; --quick sends a tenth. One in four is a good one.
REQUESTS = 4_000
# A client's error, whatever Envoy or the server says of it; anything else is a miss.
CLIENT_GRPC = {"0", "3", "4", "8", "11", "12", "16"}  # OK, INVALID_ARGUMENT, ... UNAUTHENTICATED
JSON = {"content-type": "application/json"}
GRPC_WEB = {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}
TEXT = "application/grpc-web-text"

Request = tuple[str, str, bytes, dict[str, str]]  # kind, path, body, headers
# A 200 from POST / whose token is not for the body's meeting and role: a miss.
OVERRIDDEN = "HTTP 200, a token not of the body"
# A 4xx from POST / whose body is not the sample's {"errors": [{"property", "reason"}]}: a miss.
NOT_SAMPLE = "not in the sample's error shape"


async def hostile_input(soak: Soak, row: Row) -> None:
    settings = soak.settings
    directory = soak.directory("hostile-input")
    count = REQUESTS // 10 if settings.fuzz_count < 100_000 else REQUESTS
    chance = random.Random(settings.seed)  # noqa: S311  # reproducible by its seed, not a secret
    requests = [_request(chance) for _ in range(count)]
    answers: Counter[str] = Counter()
    with Fleet(
        settings.replicas,
        1,
        config=scenario_config(soak, "hostile-input"),
        env=soak.secrets,
        workdir=directory,
    ) as gateway:
        soak.logs += [replica.log_path for replica in gateway.replicas]
        soak.logs.append(directory / "envoy.log")
        queue: asyncio.Queue[Request] = asyncio.Queue()
        for request in requests:
            queue.put_nowait(request)

        async def sender() -> None:
            while not queue.empty():
                request = queue.get_nowait()
                answers[
                    await asyncio.to_thread(_send, gateway.gateway_port, request, settings.deadline)
                ] += 1

        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
        stats = gateway.stats()
    _report(row, answers, stats)


def _report(row: Row, answers: Counter[str], stats: dict[str, int]) -> None:
    for answer, n in answers.items():
        kind, _, said = answer.partition(": ")
        good = kind.startswith("good")
        expected = said == OK if good else _a_client_error(said)
        row.outcomes.counts[OK if expected else answer] += n
    row.note("answers: " + ", ".join(f"{answer} {n:,}" for answer, n in sorted(answers.items())))
    ejected = stats.get("outlier_detection.ejections_enforced_total", 0)
    row.note(f"Envoy: {ejected} ejections, {stats.get('upstream_rq_retry', 0)} retries")
    if row.outcomes.failed:
        row.miss(
            f"{row.outcomes.failed:,} answers were a 5xx, an error of the server's, "
            "a POST / 4xx not in the sample's shape, or none"
        )
    if ejected:
        row.miss(f"Envoy ejected a replica {ejected} times")


def _a_client_error(said: str) -> bool:
    """HTTP 400-499, or a gRPC code that is the client's, or OK (a header dropped)."""
    if said == OK:
        return True
    if said.endswith(NOT_SAMPLE):
        return False
    if said.startswith("HTTP "):  # "HTTP 431", or "HTTP 400, grpc 13" (a gRPC-web answer)
        status, _, code = said.removeprefix("HTTP ").partition(", grpc ")
        return 400 <= int(status) < 500 and (not code or code in CLIENT_GRPC)
    return said.removeprefix("grpc ") in CLIENT_GRPC


def _send(port: int, request: Request, deadline: float) -> str:
    """One request; its answer as "KIND: HTTP 413", "KIND: HTTP 400, grpc 13", "KIND: grpc 3",
    "KIND: OK", hung or a transport error; on POST / a 4xx not in the sample's shape is said
    so."""
    kind, path, body, headers = request
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=deadline)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    except TimeoutError:
        return f"{kind}: {HUNG}"
    except (OSError, http.client.HTTPException):
        return f"{kind}: {TRANSPORT}"
    finally:
        connection.close()
    if headers is JSON or headers.get("content-type") == "application/json":
        if response.status != 200:
            unshaped = path == "/" and not _sample_error(response.status, data)
            return f"{kind}: HTTP {response.status}" + (f", {NOT_SAMPLE}" if unshaped else "")
        return f"{kind}: {OK if _minted_from_the_body(data) else OVERRIDDEN}"
    trailer = re.search(rb"grpc-status:\s*(\d+)", data)
    code = response.getheader("grpc-status") or (trailer[1].decode() if trailer else None)
    if code is None:
        return f"{kind}: HTTP {response.status}"
    if response.status != 200:
        return f"{kind}: HTTP {response.status}, grpc {code}"
    return f"{kind}: {OK if code == '0' else f'grpc {code}'}"


def _sample_error(status: int, answer: bytes) -> bool:
    """Whether a 4xx is Zoom's sample's error: {"errors": [{"property": ..., "reason": ...}]}."""
    if not 400 <= status < 500:
        return True  # not a 4xx: not this check's business
    try:
        errors = json.loads(answer)["errors"]
        return bool(errors) and all(set(error) == {"property", "reason"} for error in errors)
    except (ValueError, KeyError, TypeError):
        return False


def _minted_from_the_body(answer: bytes) -> bool:
    """Whether a JSON answer's token is for the body's meeting and role (a query never wins)."""
    try:
        token = json.loads(answer)["signature"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return bool(str(claims.get("mn")) == MEETING and claims.get("role") == 0)


def _request(chance: random.Random) -> Request:
    """A good call one time in four, else one of the bad inputs, each with random parts."""
    if chance.random() < 0.25:
        return chance.choice(_GOOD)(chance)
    return chance.choice(_BAD)(chance)


def _message() -> bytes:
    request = pb.SignRequest(
        meeting=pb.MeetingClaims(meeting_number=MEETING, role=pb.ROLE_PARTICIPANT)
    )
    return request.SerializeToString()


def _frame(message: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(message)) + message


_SAMPLE = json.dumps({"meetingNumber": MEETING, "role": 0}).encode()


def _noise(chance: random.Random, size: int) -> str:
    return "".join(chance.choice(string.printable[:94]) for _ in range(size))


def _good_json(_: random.Random) -> Request:
    return "good json", "/", _SAMPLE, dict(JSON)


def _good_web(_: random.Random) -> Request:
    return "good grpc-web", SIGN, _frame(_message()), dict(GRPC_WEB)


def _json_header(chance: random.Random) -> Request:
    name = chance.choice(["grpc-timeout", "grpc-status", "grpc-encoding", "grpc-message"])
    name = chance.choice([name, f"x-{chance.randrange(99)}-bin", f"grpc-{chance.randrange(99)}"])
    return "bad json header", "/", _SAMPLE, {**JSON, name: _noise(chance, chance.randrange(1, 40))}


def _json_query(chance: random.Random) -> Request:
    field = chance.choice(["meetingNumber", "role", "a", "expirationSeconds", "sdkKey"])
    return "json query", f"/?{field}={chance.randrange(10**9)}", _SAMPLE, dict(JSON)


def _json_large(chance: random.Random) -> Request:
    size = chance.randrange(64 << 10, 200 << 10)
    return "json over 64 KiB", "/", b'{"meetingNumber":"' + b"1" * size + b'"}', dict(JSON)


def _web_header(chance: random.Random) -> Request:
    name = chance.choice(["grpc-timeout", f"x-{chance.randrange(99)}-bin", "grpc-status"])
    value = _noise(chance, chance.randrange(1, 40))
    if name != "grpc-timeout" and chance.random() < 0.5:
        value = base64.b64encode(chance.randbytes(12)).decode() + "!"
    return "bad grpc-web header", SIGN, _frame(_message()), {**GRPC_WEB, name: value}


def _web_body(chance: random.Random) -> Request:
    body = chance.choice(
        [
            _frame(_message(), flag=chance.randrange(1, 256)),  # compressed, or no flag at all
            _frame(b"\x0a" + chance.randbytes(chance.randrange(64 << 10, 100 << 10))),
            chance.randbytes(chance.randrange(0, 64)),
            b"",
        ]
    )
    return "bad grpc-web body", SIGN, body, dict(GRPC_WEB)


def _web_text_body(chance: random.Random) -> Request:
    """grpc-web-text, a browser client's default, whose body is not base64 (or, by chance,
    base64 of a message cut short): noise, base64 cut anywhere, the binary frame."""
    text = base64.b64encode(_frame(_message()))
    body = chance.choice(
        [
            _noise(chance, chance.randrange(1, 64)).encode(),
            text[: chance.randrange(1, len(text))],
            _frame(_message()),
        ]
    )
    return "bad grpc-web-text body", SIGN, body, {**GRPC_WEB, "content-type": TEXT}


def _big_headers(chance: random.Random) -> Request:
    """A good call with 8 to 80 KB more of headers: signed up to the gateway's 16 KiB, then
    431 (POST /) or RESOURCE_EXHAUSTED, or past 32 KiB Envoy's codec's 431."""
    _, path, body, headers = chance.choice(_GOOD)(chance)
    return "big headers", path, body, {**headers, "x-pad": "a" * chance.randrange(8_000, 80_000)}


def _web_path(chance: random.Random) -> Request:
    path = chance.choice([f"{SIGN}?a={chance.randrange(99)}", "/sdksign.v1.SignatureService/Nope"])
    return "bad grpc-web path", path, _frame(_message()), dict(GRPC_WEB)


_GOOD: list[Callable[[random.Random], Request]] = [_good_json, _good_web]
_BAD: list[Callable[[random.Random], Request]] = [
    _json_header,
    _json_query,
    _json_large,
    _web_header,
    _web_body,
    _web_text_body,
    _web_path,
    _big_headers,
]
