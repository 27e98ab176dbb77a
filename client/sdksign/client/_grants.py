"""Users' grants (joins outside the account): the results of BeginGrant, CompleteGrant,
RemoveGrant and ListGrants as plain values; no token is ever part of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sdksign.v1 import signature_service_pb2 as pb

# What a failed grant call's request holds, for one refused as too large.
GRANTS = "a grant request is a URL, a state and a code: a few KB at most"


@dataclass(frozen=True)
class BeganGrant:
    """Where to send the user (Zoom's authorize page), and the state Zoom sends back. Neither
    is in its repr: the state (also in the URL) is what ties the callback to this grant."""

    authorize_url: str = field(repr=False)
    state: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class GrantInfo:
    """A Zoom user's grant to an app."""

    app: str
    user_id: str
    email: str
    scopes: tuple[str, ...]
    created_at: datetime
    broken: bool  # Zoom refused it: the user must authorize again


@dataclass(frozen=True)
class GrantPage:
    grants: tuple[GrantInfo, ...]
    next_page_token: str  # "" on the last page


def began_grant(response: pb.BeginGrantResponse) -> BeganGrant:
    return BeganGrant(
        authorize_url=response.authorize_url,
        state=response.state,
        expires_at=datetime.fromtimestamp(response.expires_at.seconds, UTC),
    )


def grant_info(grant: pb.Grant) -> GrantInfo:
    return GrantInfo(
        app=grant.app,
        user_id=grant.user_id,
        email=grant.email,
        scopes=tuple(grant.scopes),
        created_at=datetime.fromtimestamp(grant.created_at.seconds, UTC),
        broken=grant.broken,
    )


def grant_page(response: pb.ListGrantsResponse) -> GrantPage:
    return GrantPage(tuple(grant_info(g) for g in response.grants), response.next_page_token)
