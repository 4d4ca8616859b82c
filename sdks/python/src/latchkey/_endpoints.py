"""Every REST call as data: which request, and how to read the answer.

:class:`~latchkey.Client` and :class:`~latchkey.AsyncClient` are thin wrappers that run these
through the shared core, so a route, a body or a parser is written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import httpx

from ._http import (
    NO_BODY,
    NOT_GIVEN,
    Call,
    NotGiven,
    RequestSpec,
    json_body,
    keep_session,
    parse_json,
    parse_none,
    parse_retry_after,
    seg,
)
from ._models import (
    AuditEvent,
    BulkRevokeResult,
    CreatedToken,
    CreatedWebhook,
    Health,
    InstanceSettings,
    Introspection,
    Me,
    Member,
    Page,
    Project,
    RateLimit,
    RateLimitStatus,
    Refill,
    Token,
    TokenSettings,
    TokenUsage,
    User,
    VerifyResult,
    Webhook,
    WebhookDelivery,
    Workspace,
    format_datetime,
)

Json = Dict[str, Any]


def _page(item: Any) -> Any:
    return parse_json(lambda data: Page.from_dict(data, item))


def _paging(limit: Optional[int], cursor: Optional[str], **extra: Any) -> Dict[str, Any]:
    return dict(extra, limit=limit, cursor=cursor)


def _set(body: Json, key: str, value: Any) -> None:
    """Adds ``key`` to a PATCH body unless the argument was not given (``None`` is sent as
    ``null``)."""
    if not isinstance(value, NotGiven):
        body[key] = value


#: A rate limit as an argument: a :class:`RateLimit` or ``{"limit", "window_secs"}``.
RateLimitArg = Union[RateLimit, Mapping[str, int]]
#: A refill as an argument: a :class:`Refill` or ``{"amount", "interval"}``.
RefillArg = Union[Refill, Mapping[str, Any]]


def _policy_value(value: Any) -> Any:
    """A policy argument as JSON: dataclasses by ``to_dict``, sequences as lists, mappings
    as dicts, everything else (``None`` included) as given."""
    if isinstance(value, (RateLimit, Refill)):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _policy_body(body: Json, **fields: Any) -> None:
    """Adds the verify-time policy fields that were given (``NOT_GIVEN`` ones are left out;
    ``None`` is sent as ``null``, which clears a field in a PATCH)."""
    for key, value in fields.items():
        _set(body, key, value if isinstance(value, NotGiven) else _policy_value(value))


def _when(value: Union[datetime, str, None]) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    return format_datetime(value)


# --------------------------------------------------------------------------- system


def healthz() -> Call[Health]:
    return Call(RequestSpec("GET", "/healthz", auth=False), parse_json(Health.from_dict))


def readyz() -> Call[Health]:
    return Call(RequestSpec("GET", "/readyz", auth=False), parse_json(Health.from_dict))


# --------------------------------------------------------------------------- session, me


def sign_in(username: str, password: str) -> Call[User]:
    return Call(
        RequestSpec(
            "POST",
            "/api/v1/session",
            json={"username": username, "password": password},
            auth=False,
        ),
        parse_json(User.from_dict),
        after=keep_session,
    )


def me() -> Call[Me]:
    return Call(RequestSpec("GET", "/api/v1/me"), parse_json(Me.from_dict))


# --------------------------------------------------------------------------- workspaces


def list_workspaces(limit: Optional[int], cursor: Optional[str]) -> Call[Page[Workspace]]:
    return Call(
        RequestSpec("GET", "/api/v1/workspaces", params=_paging(limit, cursor)),
        _page(Workspace.from_dict),
    )


def get_workspace(workspace: str) -> Call[Workspace]:
    return Call(
        RequestSpec("GET", f"/api/v1/workspaces/{seg(workspace)}"),
        parse_json(Workspace.from_dict),
    )


def create_workspace(name: str) -> Call[Workspace]:
    return Call(
        RequestSpec("POST", "/api/v1/workspaces", json={"name": name}),
        parse_json(Workspace.from_dict),
    )


def list_members(workspace: str, limit: Optional[int], cursor: Optional[str]) -> Call[Page[Member]]:
    return Call(
        RequestSpec(
            "GET", f"/api/v1/workspaces/{seg(workspace)}/members", params=_paging(limit, cursor)
        ),
        _page(Member.from_dict),
    )


def put_member(workspace: str, user_id: str, role: str) -> Call[Member]:
    return Call(
        RequestSpec(
            "PUT",
            f"/api/v1/workspaces/{seg(workspace)}/members/{seg(user_id)}",
            json={"role": role},
        ),
        parse_json(Member.from_dict),
    )


def remove_member(workspace: str, user_id: str) -> Call[None]:
    return Call(
        RequestSpec("DELETE", f"/api/v1/workspaces/{seg(workspace)}/members/{seg(user_id)}"),
        parse_none,
    )


# --------------------------------------------------------------------------- projects


def create_project(
    name: str, description: Optional[str], workspace: Optional[str]
) -> Call[Project]:
    body: Json = {"name": name}
    if description is not None:
        body["description"] = description
    path = "/projects" if workspace is None else f"/api/v1/workspaces/{seg(workspace)}/projects"
    return Call(RequestSpec("POST", path, json=body), parse_json(Project.from_dict))


def list_projects(
    workspace: Optional[str], limit: Optional[int], cursor: Optional[str]
) -> Call[Page[Project]]:
    path = "/projects" if workspace is None else f"/api/v1/workspaces/{seg(workspace)}/projects"
    return Call(RequestSpec("GET", path, params=_paging(limit, cursor)), _page(Project.from_dict))


def delete_project(project_id: str, workspace: str) -> Call[None]:
    return Call(
        RequestSpec("DELETE", f"/api/v1/workspaces/{seg(workspace)}/projects/{seg(project_id)}"),
        parse_none,
    )


# --------------------------------------------------------------------------- tokens


def create_token(
    workspace: str,
    name: str,
    type: str,
    scopes: Optional[Sequence[str]],
    projects: Optional[Sequence[str]],
    environment: Optional[str],
    expires_in_days: Optional[int],
    expires_at: Union[datetime, str, None],
    owner_id: Optional[str],
    metadata: Optional[Mapping[str, Any]] = None,
    allowed_ips: Optional[Sequence[str]] = None,
    rate_limit: Optional[RateLimitArg] = None,
    remaining_uses: Optional[int] = None,
    refill: Optional[RefillArg] = None,
) -> Call[CreatedToken]:
    body: Json = {"name": name, "type": type}
    if scopes is not None:
        body["scopes"] = list(scopes)
    if projects is not None:
        body["projects"] = list(projects)
    if environment is not None:
        body["environment"] = environment
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if expires_at is not None:
        body["expires_at"] = _when(expires_at)
    if owner_id is not None:
        body["owner_id"] = owner_id
    given = dict(
        metadata=metadata,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        remaining_uses=remaining_uses,
        refill=refill,
    )
    _policy_body(body, **{k: v for k, v in given.items() if v is not None})
    return Call(
        RequestSpec("POST", f"/api/v1/workspaces/{seg(workspace)}/tokens", json=body),
        parse_json(CreatedToken.from_dict),
    )


def list_tokens(
    workspace: Optional[str], limit: Optional[int], cursor: Optional[str]
) -> Call[Page[Token]]:
    path = (
        "/api/v1/me/tokens" if workspace is None else f"/api/v1/workspaces/{seg(workspace)}/tokens"
    )
    return Call(RequestSpec("GET", path, params=_paging(limit, cursor)), _page(Token.from_dict))


def _inventory_params(
    type: Optional[str],
    state: Optional[str],
    workspace: Optional[str],
    owner: Optional[str],
    q: Optional[str],
    created_before: Union[datetime, str, None],
    expires_before: Union[datetime, str, None],
    last_used_before: Union[datetime, str, None],
    never_used: Optional[bool],
) -> Dict[str, Any]:
    # Dates may be given as ``YYYY-MM-DD`` strings (00:00 UTC, as the server reads them).
    return dict(
        type=type,
        state=state,
        workspace=workspace,
        owner=owner,
        q=q,
        created_before=_when(created_before),
        expires_before=_when(expires_before),
        last_used_before=_when(last_used_before),
        never_used=never_used,
    )


def token_inventory(
    filters: Mapping[str, Any], limit: Optional[int], cursor: Optional[str]
) -> Call[Page[Token]]:
    return Call(
        RequestSpec("GET", "/api/v1/tokens", params=_paging(limit, cursor, **filters)),
        _page(Token.from_dict),
    )


def token_inventory_csv(filters: Mapping[str, Any]) -> Call[str]:
    return Call(
        RequestSpec(
            "GET",
            "/api/v1/tokens",
            params=dict(filters, format="csv"),
            headers={"Accept": "text/csv"},
        ),
        lambda response: response.text,
    )


def bulk_revoke(ids: Sequence[str]) -> Call[BulkRevokeResult]:
    return Call(
        RequestSpec("POST", "/api/v1/tokens/bulk-revoke", json={"ids": list(ids)}),
        parse_json(BulkRevokeResult.from_dict),
    )


def reveal_token(token_id: str) -> Call[str]:
    return Call(
        RequestSpec("POST", f"/api/v1/tokens/{seg(token_id)}/reveal"),
        parse_json(lambda data: str(data["token"])),
    )


def token_usage(token_id: str) -> Call[TokenUsage]:
    return Call(
        RequestSpec("GET", f"/api/v1/tokens/{seg(token_id)}/usage"),
        parse_json(TokenUsage.from_dict),
    )


def get_token(token_id: str) -> Call[Token]:
    return Call(RequestSpec("GET", f"/api/v1/tokens/{seg(token_id)}"), parse_json(Token.from_dict))


def update_token(
    token_id: str,
    metadata: Union[Mapping[str, Any], None, NotGiven],
    allowed_ips: Union[Sequence[str], None, NotGiven],
    rate_limit: Union[RateLimitArg, None, NotGiven],
    remaining_uses: Union[int, None, NotGiven],
    refill: Union[RefillArg, None, NotGiven],
) -> Call[Token]:
    body: Json = {}
    _policy_body(
        body,
        metadata=metadata,
        allowed_ips=allowed_ips,
        rate_limit=rate_limit,
        remaining_uses=remaining_uses,
        refill=refill,
    )
    return Call(
        RequestSpec("PATCH", f"/api/v1/tokens/{seg(token_id)}", json=body),
        parse_json(Token.from_dict),
    )


def delete_token(token_id: str) -> Call[None]:
    return Call(RequestSpec("DELETE", f"/api/v1/tokens/{seg(token_id)}"), parse_none)


def token_action(token_id: str, action: str) -> Call[Token]:
    # Action endpoints take an empty body with no content type.
    return Call(
        RequestSpec("POST", f"/api/v1/tokens/{seg(token_id)}/{action}"),
        parse_json(Token.from_dict),
    )


def rotate_token(
    token_id: str,
    grace_seconds: Optional[int],
    expires_in_days: Optional[int],
    expires_at: Union[datetime, str, None],
    idempotency_key: Optional[str],
) -> Call[CreatedToken]:
    body: Json = {}
    if grace_seconds is not None:
        body["grace_seconds"] = grace_seconds
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    if expires_at is not None:
        body["expires_at"] = _when(expires_at)
    spec = RequestSpec(
        "POST",
        f"/api/v1/tokens/{seg(token_id)}/rotate",
        json=body if body else NO_BODY,
        idempotency_key=idempotency_key,
    )
    return Call(spec, parse_json(CreatedToken.from_dict))


def _verify_result(response: httpx.Response) -> VerifyResult:
    result = parse_json(VerifyResult.from_dict)(response)
    result.rate_limit = RateLimitStatus.from_headers(response.headers)
    result.retry_after = parse_retry_after(response.headers.get("retry-after"))
    return result


def verify(token: str, ip: Optional[str] = None) -> Call[VerifyResult]:
    body: Json = {"token": token}
    if ip is not None:
        body["ip"] = ip
    return Call(
        # Public route: no credential needed, so none is sent (and none is exchanged).
        RequestSpec("POST", "/api/v1/tokens/verify", json=body, auth=False),
        _verify_result,
    )


def introspect(token: str, ip: Optional[str] = None) -> Call[Introspection]:
    form = {"token": token}
    if ip is not None:
        form["ip"] = ip
    return Call(
        RequestSpec("POST", "/oauth/introspect", form=form),
        parse_json(Introspection.from_dict),
    )


def oauth_revoke(token: str) -> Call[None]:
    return Call(RequestSpec("POST", "/oauth/revoke", form={"token": token}), parse_none)


def report_leaked(tokens: Sequence[str]) -> Call[None]:
    # Anyone holding a secret may report it; no other credential is needed or sent.
    return Call(
        RequestSpec(
            "POST", "/api/v1/credentials/revoke", json={"tokens": list(tokens)}, auth=False
        ),
        parse_none,
    )


def jwks() -> Call[Dict[str, Any]]:
    return Call(RequestSpec("GET", "/.well-known/jwks.json", auth=False), json_body)


# --------------------------------------------------------------------------- users, audit, settings


def list_users(
    limit: Optional[int], cursor: Optional[str], kind: Optional[str] = None
) -> Call[Page[User]]:
    params = _paging(limit, cursor)
    if kind is not None:
        params["kind"] = kind
    return Call(RequestSpec("GET", "/api/v1/users", params=params), _page(User.from_dict))


def create_user(
    username: str,
    password: Optional[str],
    role: str,
    display_name: Optional[str],
    email: Optional[str],
    kind: str = "human",
) -> Call[User]:
    body: Json = {"username": username, "role": role}
    if password is not None:
        body["password"] = password
    if kind != "human":
        body["kind"] = kind
    if display_name is not None:
        body["display_name"] = display_name
    if email is not None:
        body["email"] = email
    return Call(RequestSpec("POST", "/api/v1/users", json=body), parse_json(User.from_dict))


def get_user(user_id: str) -> Call[User]:
    return Call(RequestSpec("GET", f"/api/v1/users/{seg(user_id)}"), parse_json(User.from_dict))


def update_user(
    user_id: str,
    active: Union[bool, NotGiven],
    role: Union[str, NotGiven],
    display_name: Union[str, None, NotGiven],
    email: Union[str, None, NotGiven],
    password: Union[str, NotGiven],
) -> Call[User]:
    body: Json = {}
    _set(body, "active", active)
    _set(body, "role", role)
    _set(body, "display_name", display_name)
    _set(body, "email", email)
    _set(body, "password", password)
    return Call(
        RequestSpec("PATCH", f"/api/v1/users/{seg(user_id)}", json=body),
        parse_json(User.from_dict),
    )


def audit_events(
    workspace: Optional[str],
    actor: Optional[str],
    token: Optional[str],
    action: Optional[str],
    since: Union[datetime, str, None],
    until: Union[datetime, str, None],
    limit: Optional[int],
    cursor: Optional[str],
) -> Call[Page[AuditEvent]]:
    params = _paging(
        limit,
        cursor,
        workspace=workspace,
        actor=actor,
        token=token,
        action=action,
        since=_when(since),
        until=_when(until),
    )
    return Call(
        RequestSpec("GET", "/api/v1/audit-events", params=params), _page(AuditEvent.from_dict)
    )


def get_instance_settings() -> Call[InstanceSettings]:
    return Call(
        RequestSpec("GET", "/api/v1/instance/settings"), parse_json(InstanceSettings.from_dict)
    )


def update_instance_settings(
    max_active_tokens: Union[int, None, NotGiven],
    default_token_lifetime_days: Union[int, NotGiven],
) -> Call[InstanceSettings]:
    body: Json = {}
    _set(body, "max_active_tokens", max_active_tokens)
    _set(body, "default_token_lifetime_days", default_token_lifetime_days)
    return Call(
        RequestSpec("PATCH", "/api/v1/instance/settings", json=body),
        parse_json(InstanceSettings.from_dict),
    )


def get_token_settings(org: str) -> Call[TokenSettings]:
    return Call(
        RequestSpec("GET", f"/api/v1/orgs/{seg(org)}/token-settings"),
        parse_json(TokenSettings.from_dict),
    )


def update_token_settings(
    org: str,
    enabled_types: Union[Sequence[str], NotGiven],
    personal_token_ttl_days: Union[int, None, NotGiven],
    max_tokens_per_user: Union[int, None, NotGiven],
    token_creators: Union[str, NotGiven],
    recoverable_types: Union[Sequence[str], NotGiven] = NOT_GIVEN,
    idle_revoke_days: Union[int, None, NotGiven] = NOT_GIVEN,
    max_token_lifetime_days: Union[int, None, NotGiven] = NOT_GIVEN,
    approval_required_types: Union[Sequence[str], NotGiven] = NOT_GIVEN,
) -> Call[TokenSettings]:
    body: Json = {}
    if not isinstance(enabled_types, NotGiven):
        body["enabled_types"] = list(enabled_types)
    if not isinstance(recoverable_types, NotGiven):
        body["recoverable_types"] = list(recoverable_types)
    if not isinstance(approval_required_types, NotGiven):
        body["approval_required_types"] = list(approval_required_types)
    _set(body, "personal_token_ttl_days", personal_token_ttl_days)
    _set(body, "max_tokens_per_user", max_tokens_per_user)
    _set(body, "token_creators", token_creators)
    _set(body, "idle_revoke_days", idle_revoke_days)
    _set(body, "max_token_lifetime_days", max_token_lifetime_days)
    return Call(
        RequestSpec("PATCH", f"/api/v1/orgs/{seg(org)}/token-settings", json=body),
        parse_json(TokenSettings.from_dict),
    )


# --------------------------------------------------------------------------- escape hatch


def create_webhook(
    url: str, events: Sequence[str], description: Optional[str], enabled: Optional[bool]
) -> Call[CreatedWebhook]:
    body: Json = {"url": url, "events": list(events)}
    if description is not None:
        body["description"] = description
    if enabled is not None:
        body["enabled"] = enabled
    return Call(
        RequestSpec("POST", "/api/v1/webhooks", json=body),
        parse_json(CreatedWebhook.from_dict),
    )


def list_webhooks(limit: Optional[int], cursor: Optional[str]) -> Call[Page[Webhook]]:
    return Call(
        RequestSpec("GET", "/api/v1/webhooks", params=_paging(limit, cursor)),
        _page(Webhook.from_dict),
    )


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call(
        RequestSpec("GET", f"/api/v1/webhooks/{seg(webhook_id)}"), parse_json(Webhook.from_dict)
    )


def update_webhook(
    webhook_id: str, url: Any, events: Any, description: Any, enabled: Any
) -> Call[Webhook]:
    body: Json = {}
    _set(body, "url", url)
    _set(body, "events", list(events) if isinstance(events, (list, tuple)) else events)
    _set(body, "description", description)
    _set(body, "enabled", enabled)
    return Call(
        RequestSpec("PATCH", f"/api/v1/webhooks/{seg(webhook_id)}", json=body),
        parse_json(Webhook.from_dict),
    )


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call(RequestSpec("DELETE", f"/api/v1/webhooks/{seg(webhook_id)}"), parse_none)


def test_webhook(webhook_id: str) -> Call[WebhookDelivery]:
    return Call(
        RequestSpec("POST", f"/api/v1/webhooks/{seg(webhook_id)}/test"),
        parse_json(WebhookDelivery.from_dict),
    )


def list_deliveries(
    webhook_id: str, limit: Optional[int], cursor: Optional[str]
) -> Call[Page[WebhookDelivery]]:
    return Call(
        RequestSpec(
            "GET",
            f"/api/v1/webhooks/{seg(webhook_id)}/deliveries",
            params=_paging(limit, cursor),
        ),
        _page(WebhookDelivery.from_dict),
    )


def redeliver(webhook_id: str, delivery_id: str) -> Call[WebhookDelivery]:
    path = f"/api/v1/webhooks/{seg(webhook_id)}/deliveries/{seg(delivery_id)}/redeliver"
    return Call(RequestSpec("POST", path), parse_json(WebhookDelivery.from_dict))


def raw(
    method: str,
    path: str,
    params: Optional[Mapping[str, Any]],
    json: Any,
    content: Optional[bytes],
    headers: Optional[Mapping[str, str]],
    idempotency_key: Optional[str],
) -> Call[Any]:
    if not path.startswith("/"):
        path = "/" + path
    return Call(
        RequestSpec(
            method.upper(),
            path,
            params=params,
            json=NO_BODY if json is None else json,
            content=content,
            headers=headers,
            idempotency_key=idempotency_key,
        ),
        json_body,
    )
