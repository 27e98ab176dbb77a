"""The SignatureService servicer: proto in, proto out.

The logic lives in tokens.mint (Sign) and tokens.diagnose (Verify).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.api import httpbody_pb2
from google.protobuf import struct_pb2
from google.protobuf.message import Message

from sdksign.v1 import signature_service_pb2 as pb
from sdksign.v1 import signature_service_pb2_grpc as pb_grpc
from sdksign.v1 import zoom_sample_pb2_grpc as zs_grpc

from ..access.policy import Caller, authorize_verify
from ..access.ratelimit import Limiter, limiter_for
from ..config import MAX_STORE_TIMEOUT, Config
from ..errors import RequestError, Unavailable
from ..observe.context import bind
from ..tokens import sample
from ..tokens.diagnose import check
from ..tokens.diagnose.problems import (
    PROBLEM_CODES,
    SEVERITIES,
    SIGNATURE_CHECKS,
    TOKEN_KINDS,
    Diagnosis,
)
from ..tokens.mint import Minted, mint
from ..zoom.jwt import fingerprint, payload_json
from ..zoom.rules import (
    DEFAULT_TTL,
    ROLE_NAME_OF_CLAIM,
    ROLE_NAMES,
    is_app_name,
    is_meeting_number,
    is_zoom_user,
    quoted,
    shown,
)
from .grantrpc import Grants

if TYPE_CHECKING:
    from ..config import ZoomSettings
    from ..zoomapi.client import ZakSource
    from ..zoomapi.grants import Obf


def _no_peer() -> dict[str, list[bytes]]:
    return {}


# A host start (or an on-behalf Sign) answers UNAVAILABLE this long before the call's
# deadline when Zoom (or the grant store) has not answered by then, so that the caller hears
# why rather than DEADLINE_EXCEEDED.
DEADLINE_MARGIN = 0.05
T = TypeVar("T")


class SignatureService(pb_grpc.SignatureServiceServicer):  # type: ignore[misc,unused-ignore]
    """Sign and Verify for the apps in `config`, on the clock `clock` (epoch seconds).

    `config` may be replaced while serving (SIGHUP): each call reads it once, at
    its start, and keeps that one to its end.
    """

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._limiter = limiter_for(config.rate_limits)
        # Limiters of stores that reloads replaced, until each is closed (a little later),
        # and the tasks that start and close limiters.
        self._retired: list[Limiter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # Zoom's API for host starts: made on the first one (runtime needs httpx only then).
        self._zak_source: ZakSource | None = None
        # Users' grants and OBF tokens: a store opened on the first call that needs one.
        self._grants = Grants()

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """New calls take `config` (SIGHUP); a changed rate limit store, a new limiter."""
        if config.rate_limits != self._config.rate_limits:
            old, self._limiter = self._limiter, limiter_for(config.rate_limits)
            self._retired.append(old)
            self._in_background(self._limiter.start())
            self._in_background(self._close_later(old))
        self._config = config
        source = self._zak_source
        if source is not None and source.settings != config.zoom:
            self._zak_source = None  # the next host start makes one for the new [zoom]
            self._in_background(_close_later(source))

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Get the rate limiter ready (a store connected), before the server listens."""
        await self._limiter.start()

    async def _close_later(self, limiter: Limiter) -> None:
        """Close a replaced limiter once the calls that took it are done with it (within
        the store's timeout), and let go of it."""
        await asyncio.sleep(MAX_STORE_TIMEOUT)
        self._retired.remove(limiter)
        await limiter.aclose()

    async def aclose(self) -> None:
        """Close the rate limiters (their store's connections), once no call is left: each
        one once, whether or not its time to be closed had come."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for limiter in (*self._retired, self._limiter):
            await limiter.aclose()
        self._retired.clear()
        if self._zak_source is not None:
            await self._zak_source.aclose()
            self._zak_source = None
        await self._grants.aclose()

    def _zaks(self, settings: ZoomSettings) -> ZakSource:
        """This worker's client of Zoom's API, made on the first host start."""
        if self._zak_source is None:
            from ..zoomapi.client import ZakSource  # httpx: the zoom extra, there when needed

            self._zak_source = ZakSource(settings)
        return self._zak_source

    async def _host_zak(
        self, config: Config, minted: Minted, user: str, context: grpc.aio.ServicerContext
    ) -> str:
        """The ZAK of `user` for the host token `minted`, within the call's deadline;
        Unavailable when Zoom has not answered just before it."""
        s2s = minted.app.s2s
        assert s2s is not None  # tokens.mint refuses a host start of an app without one
        zak = await _before_deadline(
            context,
            lambda: self._zaks(config.zoom).zak(
                minted.app.name, s2s, user, minted.expires_at - minted.issued_at
            ),
        )
        if zak is None:
            raise Unavailable(
                f"Zoom's API did not give the ZAK of {quoted(user, is_zoom_user)} within the "
                "call's deadline",
                "ZOOM_TIMEOUT",
            )
        return zak

    async def _admit(self, config: Config, context: grpc.aio.ServicerContext) -> Caller:
        """Identify the caller (raises Unauthenticated), name it on the call's log line and
        spend one request of its rate limit (raises ResourceExhausted, also when the store
        cannot be reached and on_store_error is "refuse")."""
        # Without TLS there is no client certificate to look at.
        peer = context.auth_context if config.tls is not None else _no_peer
        caller = config.policy.identify(context.invocation_metadata() or (), peer)
        bind(caller=caller.name)
        if caller.rule.rate is not None:
            await self._limiter.take(caller)
        return caller

    async def Sign(
        self, request: pb.SignRequest, context: grpc.aio.ServicerContext
    ) -> pb.SignResponse:
        config = self.config
        try:
            caller = await self._admit(config, context)
            minted = mint(request, config, self._clock(), caller)
            # A host start: the user's ZAK from Zoom, only once every check has passed.
            zak = (
                await self._host_zak(config, minted, request.start_as, context)
                if (request.start_as)
                else ""
            )
            obf = (
                await self._obf(config, minted, request, context) if request.on_behalf_of else None
            )
        except RequestError:
            bind(**_request_fields(request, config))  # a refusal: what was asked for
            raise
        bind(
            app=minted.app.name,
            kind=minted.app.kind,
            role=minted.role,
            meeting=request.meeting.meeting_number,
            ttl=minted.expires_at - minted.issued_at,
            token_fp=fingerprint(minted.token),
        )
        if zak:
            # The user as the caller named it: the audit line says whose meeting started.
            bind(start_as=shown(request.start_as, is_zoom_user), zak_fp=fingerprint(zak))
        if obf is not None:
            # The user by the Zoom user ID of their grant, never the email the caller gave.
            bind(obf_user_id=obf.user_id, obf_fp=fingerprint(obf.token))
        response = pb.SignResponse(
            token=minted.token,
            sdk_key=minted.app.sdk_key,
            app=minted.app.name,
            zak=zak,
            obf_token="" if obf is None else obf.token,
        )
        response.issued_at.seconds = minted.issued_at
        response.expires_at.seconds = minted.expires_at
        return response

    async def _obf(
        self,
        config: Config,
        minted: Minted,
        request: pb.SignRequest,
        context: grpc.aio.ServicerContext,
    ) -> Obf:
        """The OBF token of request.on_behalf_of for the meeting, within the call's deadline."""
        user = request.on_behalf_of
        obf = await _before_deadline(
            context,
            lambda: self._grants.obf(config, minted.app, user, request.meeting.meeting_number),
        )
        if obf is None:
            raise Unavailable(
                f"the OBF token of {quoted(user, is_zoom_user)} was not had within the call's "
                "deadline (Zoom's API or the grant store did not answer in time)",
                "OBF_TIMEOUT",
            )
        return obf

    async def BeginGrant(
        self, request: pb.BeginGrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.BeginGrantResponse:
        config = self.config
        return await self._grants.begin(config, await self._admit(config, context), request)

    async def CompleteGrant(
        self, request: pb.CompleteGrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.Grant:
        config = self.config
        return await self._grants.complete(config, await self._admit(config, context), request)

    async def RemoveGrant(
        self, request: pb.RemoveGrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveGrantResponse:
        config = self.config
        return await self._grants.remove(config, await self._admit(config, context), request)

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        config = self.config
        return await self._grants.list(config, await self._admit(config, context), request)

    async def Verify(
        self, request: pb.VerifyRequest, context: grpc.aio.ServicerContext
    ) -> pb.VerifyResponse:
        config = self.config
        bind(token_fp=fingerprint(request.token))
        caller = await self._admit(config, context)
        authorize_verify(caller)
        diagnosis = check(request, config, int(self._clock()), caller)
        claims = diagnosis.claims or {}
        bind(
            app=diagnosis.app.name if diagnosis.app else "",
            role=_role_claim(claims),
            valid=diagnosis.valid,
            problems=[p.code for p in diagnosis.problems],
        )
        return verify_response(diagnosis)


def _request_fields(request: pb.SignRequest, config: Config) -> dict[str, object]:
    """The log fields of what a Sign request asked for, before any of it was checked: each
    value the caller wrote as it was sent only when it has its field's shape (zoom.rules:
    shown), else its length and fingerprint."""
    claims = request.WhichOneof("claims")
    role = request.meeting.role if claims == "meeting" else request.video.role
    fields = {
        "app": shown(request.app, lambda name: is_app_name(name) or _configured(config, name)),
        "kind": claims or "",
        "role": ROLE_NAMES.get(role, ""),
        "meeting": shown(request.meeting.meeting_number, is_meeting_number),
        "ttl": request.ttl.seconds if request.HasField("ttl") else DEFAULT_TTL,
    }
    if request.start_as:
        fields["start_as"] = shown(request.start_as, is_zoom_user)
    if request.on_behalf_of:
        # Refused, so no grant names the user: a fingerprint of them as given (an email is
        # taken in lower case, as Zoom treats it), never the email itself.
        given = request.on_behalf_of
        fields["on_behalf_of_fp"] = fingerprint(given.lower() if "@" in given else given)
    return fields


def _configured(config: Config, name: str) -> bool:
    """Whether `name` is a configured app's (the operator's words, whatever their shape)."""
    return any(app.name == name for app in config.apps)


async def _before_deadline(
    context: grpc.aio.ServicerContext, work: Callable[[], Awaitable[T]]
) -> T | None:
    """What `work()` answers, or None when it has not answered DEADLINE_MARGIN before the
    call's deadline (not started at all when that is already past)."""
    remaining = context.time_remaining()
    budget = None if remaining is None else remaining - DEADLINE_MARGIN
    if budget is not None and budget <= 0:
        return None
    try:
        async with asyncio.timeout(budget):
            return await work()
    except TimeoutError:
        return None


async def _close_later(source: ZakSource) -> None:
    """Close a replaced client of Zoom's API once the calls that took it are done with it."""
    await asyncio.sleep(source.settings.timeout * 4)
    await source.aclose()


def verify_response(diagnosis: Diagnosis) -> pb.VerifyResponse:
    """The VerifyResponse for a diagnosis."""
    response = pb.VerifyResponse(
        valid=diagnosis.valid,
        problems=[
            pb.Problem(
                code=PROBLEM_CODES[p.code],
                message=_utf8(p.message),
                claim=_utf8(p.claim),
                severity=SEVERITIES[p.severity],
            )
            for p in diagnosis.problems
        ],
        app=diagnosis.app.name if diagnosis.app else "",
        kind=TOKEN_KINDS[diagnosis.kind],
        secret_fingerprint=diagnosis.secret_fingerprint,
        signature=SIGNATURE_CHECKS[diagnosis.signature],
        # None leaves the field unset, which costs less than setting it to ().
        tried_secret_fingerprints=diagnosis.tried_fingerprints or None,
        header_json=_json_text(diagnosis.header),
        claims_json=_json_text(diagnosis.claims),
    )
    for name, value in (("claims", diagnosis.claims), ("header", diagnosis.header)):
        if value is not None:
            _set_struct(response, name, value)
    return response


def _json_text(value: dict[str, Any] | None) -> str:
    """Decoded JSON as compact text in its own key order (what a Struct cannot keep), cut
    where the Struct is cut; "" for None."""
    if value is None:
        return ""
    text = payload_json(value)
    # A bracket past the first byte: a nested value (or one in a string). Looking for it is
    # far cheaper than looking at each value's type, and a flat payload is the rule.
    nested = text.find(b"{", 1) != -1 or text.find(b"[") != -1
    if nested and any(isinstance(item, dict | list) for item in value.values()):
        text = payload_json({key: _cut(item, MAX_JSON_DEPTH - 1) for key, item in value.items()})
    return text.decode()


def _cut(item: Any, depth: int) -> Any:
    """`item` with its containers at depth 0 replaced by the TOO_DEEP note, as _set does."""
    if not isinstance(item, dict | list):
        return item
    if depth == 0:
        return TOO_DEEP
    if isinstance(item, dict):
        return {key: _cut(value, depth - 1) for key, value in item.items()}
    return [_cut(value, depth - 1) for value in item]


def _utf8(text: str) -> str:
    """`text` as protobuf can send it: a lone surrogate (a token may hold one, as JSON
    allows "\\ud800") is written as its escape instead of failing the answer."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Protobuf parsers refuse messages nested over 100 deep, and each JSON level costs a
# Struct two (Value, then ListValue or Struct): keep what we send well inside that.
MAX_JSON_DEPTH = 32
TOO_DEEP = "(nested too deeply to show)"


def _set_struct(message: Message, name: str, value: dict[str, Any]) -> None:
    """Set the Struct field `name` of `message` to decoded JSON (too-deep parts replaced by
    a note); left unset if the JSON cannot be held."""
    struct = getattr(message, name)
    struct.SetInParent()
    try:
        _fill(struct, value, MAX_JSON_DEPTH)
    except (ValueError, TypeError, OverflowError):
        message.ClearField(name)


def _fill(struct: struct_pb2.Struct, value: dict[str, Any], depth: int) -> None:
    fields = struct.fields
    for key, item in value.items():
        _set(fields[key], item, depth - 1)


def _set(target: struct_pb2.Value, item: Any, depth: int) -> None:
    """Set `target` to the JSON value `item`; containers at depth 0 become the TOO_DEEP note."""
    if isinstance(item, str):
        target.string_value = item
    elif isinstance(item, bool):
        target.bool_value = item
    elif isinstance(item, int | float):
        target.number_value = item
    elif item is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif not isinstance(item, dict | list):
        raise TypeError(f"not a JSON value: {type(item).__name__}")
    elif depth == 0:
        target.string_value = TOO_DEEP
    elif isinstance(item, dict):
        target.struct_value.SetInParent()
        _fill(target.struct_value, item, depth)
    else:
        target.list_value.SetInParent()
        for element in item:
            _set(target.list_value.values.add(), element, depth - 1)


def _role_claim(claims: dict[str, Any]) -> str:
    """The token's role as the log names it; anything but the integers 0 and 1 is left out."""
    value = claims.get("role", claims.get("role_type"))
    return ROLE_NAME_OF_CLAIM.get(value, "") if type(value) is int else ""


class ZoomSampleService(zs_grpc.ZoomSampleServiceServicer):  # type: ignore[misc,unused-ignore]
    """Zoom's sample endpoint in its own shape, on top of SignatureService.Sign.

    The JSON body (an HttpBody, as the gateway passed it on) becomes a SignRequest by the
    sample's rules (tokens.sample) and goes through Sign itself: the same checks, caller
    rules and audit line. Every answer is JSON: errors too, by answer_error.
    """

    def __init__(self, signatures: SignatureService) -> None:
        self._signatures = signatures

    async def Sign(
        self, request: httpbody_pb2.HttpBody, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        sign = sample.sign_request(request.content_type, request.data)
        signed = await self._signatures.Sign(sign, context)
        return _json_body(sample.answer(signed.token, signed.sdk_key))

    @staticmethod
    def answer_error(error: RequestError) -> httpbody_pb2.HttpBody:
        """The answer to a refused call, in the sample's error shape (runtime.rpc sends it
        with the error's status, which the gateway makes the HTTP status)."""
        return _json_body(sample.errors(error))


def _json_body(data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=sample.JSON_TYPE, data=data)
