"""Typed objects for the API's JSON answers (DESIGN.md §3, crates/proto).

Each class has ``from_dict`` that takes the server's JSON object. Unknown keys are ignored so
a newer server does not break an older SDK. Times are timezone-aware ``datetime`` objects in
UTC. Enumerated values (token type, state, roles, scopes) are plain strings as on the wire,
typed with ``Literal`` aliases (``TokenType``, ``TokenState``, ``Scope``, ...) so a type
checker catches a misspelt ``"personnal"``; a value a newer server adds still arrives as
its string.

The only object that ever holds a secret is :class:`CreatedToken` (the answer of a token
create or rotate), and its ``token`` field is left out of ``repr()``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    get_args,
)

__all__ = [
    "TokenType",
    "TokenState",
    "Scope",
    "VerifyReason",
    "OrgRole",
    "UserKind",
    "WorkspaceRole",
    "TokenCreators",
    "TOKEN_TYPES",
    "TOKEN_STATES",
    "SCOPES",
    "Page",
    "RateLimit",
    "Refill",
    "RefillInterval",
    "RateLimitStatus",
    "Token",
    "CreatedToken",
    "BulkRevokeResult",
    "SkippedToken",
    "SkipReason",
    "User",
    "Org",
    "Membership",
    "Me",
    "Workspace",
    "Member",
    "Project",
    "VerifyResult",
    "Introspection",
    "AuditEvent",
    "InstanceSettings",
    "TokenSettings",
    "Health",
    "Webhook",
    "CreatedWebhook",
    "WebhookDelivery",
    "EventType",
    "EVENT_TYPES",
]

T = TypeVar("T")


#: Token type names (``Token.type``).
TokenType = Literal["personal", "legacy", "client", "frontend", "admin"]
#: Why a bulk revoke left a token alone (``SkippedToken.reason``): ``not_found`` (unknown, or
#: not visible to the caller), ``forbidden`` (visible but not the caller's to manage),
#: ``already_revoked``, ``expired``, ``duplicate`` (the id came earlier in the request).
SkipReason = Literal["not_found", "forbidden", "already_revoked", "expired", "duplicate"]
#: Token state names (``Token.state``); ``suspended`` and ``type_disabled`` are derived
#: when read (the owner is deactivated, the type is disabled). ``pending`` waits for an org
#: admin's approval (``TokenSettings.approval_required_types``); ``denied`` is final.
TokenState = Literal[
    "active", "revoked", "expired", "suspended", "type_disabled", "pending", "denied"
]
#: Scope names (``Token.scopes``).
Scope = Literal[
    "projects:read",
    "projects:write",
    "tokens:read",
    "tokens:write",
    "members:read",
    "introspect",
    "admin",
    "metrics:read",
]
#: Why a token check failed (``VerifyResult.reason``).
VerifyReason = Literal[
    "bad_format",
    "not_found",
    "expired",
    "revoked",
    "type_disabled",
    "suspended",
    "pending",
    "lifetime_policy",
    "ip_not_allowed",
    "usage_exceeded",
    "rate_limited",
]
#: How usage credits are refilled (``Refill.interval``).
RefillInterval = Literal["daily", "monthly"]
#: A user's role in the organization (``User.role``).
OrgRole = Literal["owner", "admin", "member"]
UserKind = Literal["human", "service"]
#: A user's role in a workspace (``Member.role``).
WorkspaceRole = Literal["admin", "member", "viewer"]
#: Who may create tokens (``TokenSettings.token_creators``).
TokenCreators = Literal["members", "admins"]

#: Lifecycle event types a webhook subscribes to (``Webhook.events``).
EventType = Literal[
    "token.created",
    "token.revoked",
    "token.restored",
    "token.rotated",
    "token.deleted",
    "token.expiring",
    "token.expired",
    "token.leaked",
    "token.revealed",
    "user.deactivated",
    "user.reactivated",
]

#: Every value of each literal type, for code that needs them at run time.
TOKEN_TYPES: Tuple[TokenType, ...] = get_args(TokenType)
TOKEN_STATES: Tuple[TokenState, ...] = get_args(TokenState)
SCOPES: Tuple[Scope, ...] = get_args(Scope)
EVENT_TYPES: Tuple[EventType, ...] = get_args(EventType)


_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_datetime(value: Any) -> Optional[datetime]:
    """Parses an RFC 3339 time (``2027-08-22T10:00:00Z``) into an aware UTC datetime.

    Works on Python 3.9 (whose ``fromisoformat`` rejects ``Z``) and with any number of
    fractional digits."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    m = _RFC3339.match(str(value))
    if not m:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    date, clock, frac, zone = m.groups()
    frac = (frac or "")[:7]  # '.' plus at most 6 digits
    zone = "+00:00" if zone in ("Z", "z") else zone
    return datetime.fromisoformat(f"{date}T{clock}{frac}{zone}").astimezone(timezone.utc)


def format_datetime(value: datetime) -> str:
    """Formats a datetime as RFC 3339 UTC; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _req_dt(value: Any) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise ValueError("a required time is missing")
    return parsed


def _str_list(value: Any) -> List[Any]:
    # List[Any]: the strings may be typed as a Literal (scopes, token types) by the caller.
    return [str(v) for v in (value or [])]


@dataclass
class Page(Generic[T]):
    """One page of a list: ``items`` (newest first) and ``next_cursor`` (``None`` on the
    last page). Iterating a page iterates its items; ``client.paginate(...)`` walks every
    page."""

    items: List[T]
    next_cursor: Optional[str] = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], item: Callable[[Mapping[str, Any]], T]
    ) -> "Page[T]":
        return cls(
            items=[item(x) for x in data.get("items") or []],
            next_cursor=data.get("next_cursor"),
        )


@dataclass(frozen=True)
class RateLimit:
    """A token's rate limit: at most ``limit`` uses in each window of ``window_secs``
    seconds (1 to 86,400; windows are aligned to the Unix epoch)."""

    limit: int
    window_secs: int

    def to_dict(self) -> Dict[str, int]:
        return {"limit": self.limit, "window_secs": self.window_secs}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RateLimit":
        return cls(limit=int(data["limit"]), window_secs=int(data["window_secs"]))


@dataclass(frozen=True)
class Refill:
    """How a token's ``remaining_uses`` is refilled: set back to ``amount`` at every
    ``interval`` boundary (00:00 UTC; ``monthly``: the first of the month)."""

    amount: int
    interval: RefillInterval

    def to_dict(self) -> Dict[str, Any]:
        return {"amount": self.amount, "interval": self.interval}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Refill":
        return cls(amount=int(data["amount"]), interval=data["interval"])


@dataclass(frozen=True)
class RateLimitStatus:
    """Where a rate-limited token stands, from an answer's ``RateLimit-Limit``,
    ``RateLimit-Remaining`` and ``RateLimit-Reset`` headers (``reset``: seconds until the
    window ends). Each is ``None`` when the header is missing or unreadable."""

    limit: Optional[int] = None
    remaining: Optional[int] = None
    reset: Optional[int] = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Optional["RateLimitStatus"]:
        """The status in ``headers`` (case-insensitive names, as httpx gives them), or
        ``None`` when none of the three is there."""

        def number(name: str) -> Optional[int]:
            value = headers.get(name)
            if value is None:
                return None
            try:
                return int(str(value).strip())
            except ValueError:
                return None

        status = cls(
            limit=number("ratelimit-limit"),
            remaining=number("ratelimit-remaining"),
            reset=number("ratelimit-reset"),
        )
        if status.limit is None and status.remaining is None and status.reset is None:
            return None
        return status


def _opt(build: Callable[[Mapping[str, Any]], T], value: Any) -> Optional[T]:
    return None if value is None else build(value)


@dataclass
class Token:
    """A token's metadata. Never holds its secret (see :class:`CreatedToken`).

    The verify-time policy (DESIGN.md §8): ``metadata`` (a JSON object returned by every
    check), ``allowed_ips`` (CIDRs it may be used from; ``None``: anywhere), ``rate_limit``,
    ``remaining_uses`` (``None``: unlimited) and its ``refill``."""

    id: str
    name: str
    type: TokenType
    hint: str
    state: TokenState
    created_at: datetime
    scopes: List[Scope] = field(default_factory=list)
    projects: List[str] = field(default_factory=list)
    workspace_id: Optional[str] = None
    workspace_name: Optional[str] = None
    owner_id: Optional[str] = None
    owner_username: Optional[str] = None
    created_by: Optional[str] = None
    environment: Optional[str] = None
    expires_at: Optional[datetime] = None
    last_used_at: Optional[datetime] = None
    last_used_ip: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    allowed_ips: Optional[List[str]] = None
    rate_limit: Optional[RateLimit] = None
    remaining_uses: Optional[int] = None
    refill: Optional[Refill] = None
    #: Whether the secret is kept (encrypted) so ``tokens.reveal`` can show it again: the
    #: type was in ``TokenSettings.recoverable_types`` when it was created or rotated.
    recoverable: bool = False

    @staticmethod
    def _fields(data: Mapping[str, Any]) -> Dict[str, Any]:
        return dict(
            id=data["id"],
            name=data["name"],
            type=data["type"],
            hint=data["hint"],
            state=data["state"],
            created_at=_req_dt(data["created_at"]),
            scopes=_str_list(data.get("scopes")),
            projects=_str_list(data.get("projects")),
            workspace_id=data.get("workspace_id"),
            workspace_name=data.get("workspace_name"),
            owner_id=data.get("owner_id"),
            owner_username=data.get("owner_username"),
            created_by=data.get("created_by"),
            environment=data.get("environment"),
            expires_at=parse_datetime(data.get("expires_at")),
            last_used_at=parse_datetime(data.get("last_used_at")),
            last_used_ip=data.get("last_used_ip"),
            metadata=data.get("metadata"),
            allowed_ips=None if data.get("allowed_ips") is None else _str_list(data["allowed_ips"]),
            rate_limit=_opt(RateLimit.from_dict, data.get("rate_limit")),
            remaining_uses=None
            if data.get("remaining_uses") is None
            else int(data["remaining_uses"]),
            refill=_opt(Refill.from_dict, data.get("refill")),
            recoverable=bool(data.get("recoverable", False)),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Token":
        return Token(**Token._fields(data))

    @property
    def active(self) -> bool:
        """Whether the token's state is ``active``."""
        return self.state == "active"


@dataclass
class CreatedToken(Token):
    """A token just created or rotated: its metadata plus ``token``, the secret.

    The secret is shown exactly once, here; store it now. It is kept out of ``repr()`` so
    printing or logging this object does not leak it."""

    token: str = field(default="", repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CreatedToken":
        return CreatedToken(token=data["token"], **Token._fields(data))

    @property
    def secret(self) -> str:
        """The secret (same as ``.token``)."""
        return self.token

    def without_secret(self) -> Token:
        """The token object without the secret (``.metadata`` is the token's own metadata
        object, DESIGN.md §8)."""
        return Token(**{k: v for k, v in self.__dict__.items() if k != "token"})


@dataclass
class SkippedToken:
    """An id a bulk revoke left as it was, and why."""

    id: str
    reason: SkipReason

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SkippedToken":
        return cls(id=data["id"], reason=data["reason"])


@dataclass
class BulkRevokeResult:
    """What ``tokens.bulk_revoke`` did: every id asked for is in exactly one of the two
    lists, in the order asked."""

    revoked: List[str]
    skipped: List[SkippedToken]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BulkRevokeResult":
        return cls(
            revoked=_str_list(data.get("revoked")),
            skipped=[SkippedToken.from_dict(item) for item in data.get("skipped") or []],
        )


@dataclass
class IpUse:
    """A client address a token was used from, and when last."""

    ip: str
    last_seen_at: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "IpUse":
        return cls(ip=str(data["ip"]), last_seen_at=_req_dt(data["last_seen_at"]))


@dataclass
class DailyUse:
    """A token's successful uses on one UTC day."""

    date: date
    count: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DailyUse":
        return cls(date=date.fromisoformat(str(data["date"])), count=int(data["count"]))


@dataclass
class TokenUsage:
    """How a token has been used lately (``tokens.usage``): the last use, the last 5
    distinct client addresses (newest first) and the uses per UTC day over 90 days (oldest
    first, today last). The servers count in memory and write with their last-used flush,
    so uses on other nodes show up to ``last_used_flush_secs`` late."""

    last_used_at: Optional[datetime]
    last_ips: List[IpUse]
    daily: List[DailyUse]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenUsage":
        return cls(
            last_used_at=parse_datetime(data.get("last_used_at")),
            last_ips=[IpUse.from_dict(item) for item in data.get("last_ips") or []],
            daily=[DailyUse.from_dict(item) for item in data.get("daily") or []],
        )

    @property
    def total(self) -> int:
        """Uses over the whole window."""
        return sum(day.count for day in self.daily)


@dataclass
class User:
    """A user of the organization."""

    id: str
    username: str
    role: OrgRole
    active: bool
    created_at: datetime
    display_name: Optional[str] = None
    email: Optional[str] = None
    #: ``human``, or ``service`` for a service account (never signs in).
    kind: UserKind = "human"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "User":
        return cls(
            id=data["id"],
            username=data["username"],
            role=data["role"],
            active=bool(data["active"]),
            created_at=_req_dt(data["created_at"]),
            display_name=data.get("display_name"),
            email=data.get("email"),
            kind=data.get("kind", "human"),
        )


@dataclass
class Org:
    """The organization, as nested in :class:`Me`."""

    id: str
    name: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Org":
        return cls(id=data["id"], name=data["name"])


@dataclass
class Membership:
    """One of the caller's workspace memberships, as nested in :class:`Me`."""

    workspace_id: str
    workspace_name: str
    role: WorkspaceRole

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Membership":
        return cls(
            workspace_id=data["workspace_id"],
            workspace_name=data["workspace_name"],
            role=data["role"],
        )


@dataclass
class Me:
    """``GET /api/v1/me``: the calling user, their organization and memberships."""

    id: str
    username: str
    role: OrgRole
    active: bool
    created_at: datetime
    org: Org
    memberships: List[Membership] = field(default_factory=list)
    display_name: Optional[str] = None
    email: Optional[str] = None
    #: ``human``, or ``service`` when a service account's token is calling.
    kind: UserKind = "human"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Me":
        return cls(
            id=data["id"],
            username=data["username"],
            role=data["role"],
            active=bool(data["active"]),
            created_at=_req_dt(data["created_at"]),
            org=Org.from_dict(data["org"]),
            memberships=[Membership.from_dict(m) for m in data.get("memberships") or []],
            display_name=data.get("display_name"),
            email=data.get("email"),
            kind=data.get("kind", "human"),
        )

    @property
    def user(self) -> User:
        """The user part, as a :class:`User`."""
        return User(
            id=self.id,
            username=self.username,
            role=self.role,
            active=self.active,
            created_at=self.created_at,
            display_name=self.display_name,
            email=self.email,
            kind=self.kind,
        )


@dataclass
class Workspace:
    """A workspace."""

    id: str
    name: str
    org_id: str
    created_at: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Workspace":
        return cls(
            id=data["id"],
            name=data["name"],
            org_id=data["org_id"],
            created_at=_req_dt(data["created_at"]),
        )


@dataclass
class Member:
    """A user's membership in a workspace."""

    workspace_id: str
    user_id: str
    username: str
    role: WorkspaceRole
    created_at: datetime

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Member":
        return cls(
            workspace_id=data["workspace_id"],
            user_id=data["user_id"],
            username=data["username"],
            role=data["role"],
            created_at=_req_dt(data["created_at"]),
        )


@dataclass
class Project:
    """A project: the example resource that tokens protect."""

    id: str
    workspace_id: str
    name: str
    created_at: datetime
    description: Optional[str] = None
    created_by: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Project":
        return cls(
            id=data["id"],
            workspace_id=data["workspace_id"],
            name=data["name"],
            created_at=_req_dt(data["created_at"]),
            description=data.get("description"),
            created_by=data.get("created_by"),
        )


@dataclass
class VerifyResult:
    """``POST /api/v1/tokens/verify``: ``valid`` plus the token (with its ``metadata``), or
    the ``reason`` it fails (``bad_format``, ``not_found``, ``expired``, ``revoked``,
    ``type_disabled``, ``suspended``, ``pending``, ``lifetime_policy``, ``ip_not_allowed``,
    ``usage_exceeded``, ``rate_limited``, ...).

    For a rate-limited token, ``rate_limit`` is where it stands (the ``RateLimit-*``
    headers) and, once over the limit, ``retry_after`` the seconds until it works again."""

    valid: bool
    token: Optional[Token] = None
    reason: Optional[VerifyReason] = None
    rate_limit: Optional[RateLimitStatus] = None
    retry_after: Optional[float] = None

    def __bool__(self) -> bool:
        return self.valid

    @property
    def metadata(self) -> Optional[Dict[str, Any]]:
        """The token's metadata when valid (``None`` otherwise, or when it has none)."""
        return None if self.token is None else self.token.metadata

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "VerifyResult":
        token = data.get("token")
        return cls(
            valid=bool(data["valid"]),
            token=Token.from_dict(token) if token else None,
            reason=data.get("reason"),
        )


@dataclass
class Introspection:
    """RFC 7662 introspection answer. Inactive tokens have only ``active=False``.

    ``exp``/``iat`` are NumericDate seconds as on the wire; ``expires_at``/``issued_at`` give
    them as datetimes. ``scopes`` splits the space-separated ``scope``."""

    active: bool
    scope: Optional[str] = None
    client_id: Optional[str] = None
    username: Optional[str] = None
    sub: Optional[str] = None
    token_type: Optional[str] = None
    exp: Optional[int] = None
    iat: Optional[int] = None
    workspace_id: Optional[str] = None
    latchkey_type: Optional[TokenType] = None
    #: The token's metadata (a JSON object), when it has any.
    metadata: Optional[Dict[str, Any]] = None

    def __bool__(self) -> bool:
        return self.active

    @property
    def scopes(self) -> List[str]:
        return self.scope.split() if self.scope else []

    @property
    def expires_at(self) -> Optional[datetime]:
        return None if self.exp is None else datetime.fromtimestamp(self.exp, timezone.utc)

    @property
    def issued_at(self) -> Optional[datetime]:
        return None if self.iat is None else datetime.fromtimestamp(self.iat, timezone.utc)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Introspection":
        def opt_int(v: Any) -> Optional[int]:
            return None if v is None else int(v)

        return cls(
            active=bool(data.get("active")),
            scope=data.get("scope"),
            client_id=data.get("client_id"),
            username=data.get("username"),
            sub=data.get("sub"),
            token_type=data.get("token_type"),
            exp=opt_int(data.get("exp")),
            iat=opt_int(data.get("iat")),
            workspace_id=data.get("workspace_id"),
            latchkey_type=data.get("latchkey_type"),
            metadata=data.get("metadata"),
        )


@dataclass
class AuditEvent:
    """An audit event: who did what, when, from where. Never holds a secret."""

    id: str
    action: str
    created_at: datetime
    actor_id: Optional[str] = None
    actor_token_id: Optional[str] = None
    target_type: Optional[str] = None
    target_id: Optional[str] = None
    workspace_id: Optional[str] = None
    subject_user_id: Optional[str] = None
    ip: Optional[str] = None
    details: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AuditEvent":
        details = data.get("details")
        return cls(
            id=data["id"],
            action=data["action"],
            created_at=_req_dt(data["created_at"]),
            actor_id=data.get("actor_id"),
            actor_token_id=data.get("actor_token_id"),
            target_type=data.get("target_type"),
            target_id=data.get("target_id"),
            workspace_id=data.get("workspace_id"),
            subject_user_id=data.get("subject_user_id"),
            ip=data.get("ip"),
            details=dict(details) if isinstance(details, dict) else {},
        )


@dataclass
class InstanceSettings:
    """Instance-wide limits and defaults (``None`` limit: unlimited)."""

    default_token_lifetime_days: int
    max_active_tokens: Optional[int] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InstanceSettings":
        return cls(
            default_token_lifetime_days=int(data["default_token_lifetime_days"]),
            max_active_tokens=data.get("max_active_tokens"),
        )


@dataclass
class TokenSettings:
    """An organization's token settings."""

    enabled_types: List[TokenType]
    token_creators: TokenCreators
    personal_token_ttl_days: Optional[int] = None
    max_tokens_per_user: Optional[int] = None
    #: Types whose secrets are kept encrypted when created or rotated, so those who may see
    #: such a token can reveal it again (default none; taking a type off erases its secrets).
    recoverable_types: List[TokenType] = field(default_factory=list)
    #: Tokens unused this many days (never used: since created) are revoked by the server's
    #: sweep, audited with reason ``idle`` and restorable (``None``: off).
    idle_revoke_days: Optional[int] = None
    #: The longest any token may live, counted from its creation (``None``: no cap). A
    #: longer requested expiry is refused (``lifetime_exceeds_policy``); an older token
    #: fails with reason ``lifetime_policy``, also one created before the cap was lowered.
    max_token_lifetime_days: Optional[int] = None
    #: Types whose new tokens start ``pending`` until an org admin other than their creator
    #: approves them, unless an org owner creates them (default none; owners change it).
    approval_required_types: List[TokenType] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TokenSettings":
        return cls(
            enabled_types=_str_list(data.get("enabled_types")),
            token_creators=data["token_creators"],
            personal_token_ttl_days=data.get("personal_token_ttl_days"),
            max_tokens_per_user=data.get("max_tokens_per_user"),
            recoverable_types=_str_list(data.get("recoverable_types")),
            idle_revoke_days=data.get("idle_revoke_days"),
            max_token_lifetime_days=data.get("max_token_lifetime_days"),
            approval_required_types=_str_list(data.get("approval_required_types")),
        )


@dataclass
class Health:
    """``/healthz`` and ``/readyz``: ``status`` is ``ok`` or what is wrong."""

    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Health":
        return cls(status=str(data.get("status", "")))


@dataclass
class Webhook:
    """A webhook endpoint (never its secret)."""

    id: str
    url: str
    events: List[EventType]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    description: Optional[str] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Webhook":
        return cls(
            id=data["id"],
            url=data["url"],
            events=_str_list(data.get("events")),
            enabled=bool(data.get("enabled", True)),
            created_at=_req_dt(data["created_at"]),
            updated_at=_req_dt(data["updated_at"]),
            description=data.get("description"),
        )


@dataclass
class CreatedWebhook:
    """The answer of a webhook create: the endpoint and its signing secret (``whsec_…``),
    shown this once (left out of ``repr()``). Verify deliveries with it, e.g. with the
    ``standardwebhooks`` library."""

    webhook: Webhook
    secret: str = field(repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CreatedWebhook":
        return cls(webhook=Webhook.from_dict(data), secret=str(data["secret"]))


@dataclass
class WebhookDelivery:
    """One message to one endpoint: its event, state and attempts."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    created_at: datetime
    last_status: Optional[int] = None
    last_error: Optional[str] = None
    last_attempt_at: Optional[datetime] = None
    next_attempt_at: Optional[datetime] = None
    attempt_log: List[Dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "WebhookDelivery":
        log = data.get("attempt_log")
        return cls(
            id=data["id"],
            webhook_id=data["webhook_id"],
            event_id=data["event_id"],
            event_type=data["event_type"],
            state=data["state"],
            attempts=int(data.get("attempts", 0)),
            created_at=_req_dt(data["created_at"]),
            last_status=data.get("last_status"),
            last_error=data.get("last_error"),
            last_attempt_at=parse_datetime(data.get("last_attempt_at")),
            next_attempt_at=parse_datetime(data.get("next_attempt_at")),
            attempt_log=[dict(a) for a in log] if isinstance(log, list) else [],
        )
