"""The synchronous client, generated from ``latchkey/_async/client.py``.

Do not edit: change the async source, then run ``python scripts/gen_sync.py`` (a test fails
while this file is out of date).
"""

from __future__ import annotations

from datetime import datetime
from typing import (
    Any,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

import httpx

from .. import _endpoints as E
from .._concurrency import SyncLock, sync_sleep
from .._endpoints import RateLimitArg, RefillArg
from .._http import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    Call,
    Core,
    EnsureFresh,
    Flow,
    NotGiven,
    Send,
    Sleep,
    no_cookie_jar,
    resolve_base_url,
    resolve_token,
)
from .._models import (
    AuditEvent,
    BulkRevokeResult,
    CreatedToken,
    CreatedWebhook,
    EventType,
    Health,
    InstanceSettings,
    Introspection,
    Me,
    Member,
    OrgRole,
    Project,
    Scope,
    Token,
    TokenCreators,
    TokenSettings,
    TokenState,
    TokenType,
    TokenUsage,
    User,
    UserKind,
    VerifyResult,
    Webhook,
    WebhookDelivery,
    Workspace,
    WorkspaceRole,
)
from .._pagination import MakeCall, SyncListMethod, SyncPage, paginate_sync

T = TypeVar("T")

__all__ = ["Client", "Tokens", "Members", "Users", "Webhooks"]


class Client:
    """The synchronous Latchkey API client.

    ``Client(url, token)``, or ``Client()`` to read ``LATCHKEY_URL`` and
    ``LATCHKEY_API_KEY``. A URL without a scheme means ``https://``. Without a token the
    client refuses to be built (it says what to set), unless ``anonymous=True``: then only
    public calls work (``verify``, ``sign_in``, ``health``, ``report_leaked``).

    A personal token (``lkp_``) is exchanged for a short-lived access JWT and refreshed
    before it expires, transparently (concurrent callers share one refresh); other tokens
    are sent as they are. ``jwt_exchange=False`` turns the exchange off (``True`` tries it
    for any token).

    Requests time out after ``timeout`` seconds (a float or an ``httpx.Timeout``).
    Connection errors and 429/503 answers are retried up to ``max_retries`` times with
    backoff (honouring ``Retry-After``), for idempotent requests and those carrying an
    ``Idempotency-Key`` only. Errors raise :class:`~latchkey.APIError` subclasses.

    List methods return results that walk every page when iterated; ``.items`` is the
    first page.

    Use it as a context manager, or call :meth:`close`, to release connections. One
    client may be shared by every thread (sync) or by every task of one event loop (async).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        *,
        timeout: Union[float, httpx.Timeout, None] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        jwt_exchange: Optional[bool] = None,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
        anonymous: bool = False,
    ) -> None:
        base_url = resolve_base_url(url)
        credential = resolve_token(token, anonymous=anonymous)
        self._owns_http = http_client is None
        http = http_client or httpx.Client(cookies=no_cookie_jar(), follow_redirects=False)
        self._core = Core(
            base_url,
            credential,
            timeout=timeout,
            max_retries=max_retries,
            jwt_exchange=jwt_exchange,
            headers=headers,
            http_client=http,
        )
        self._http = http
        self._refresh_lock = SyncLock()
        self._sleep = sync_sleep
        self.tokens = Tokens(self)
        self.members = Members(self)
        self.users = Users(self)
        self.webhooks = Webhooks(self)

    def __repr__(self) -> str:
        return f"Client({self._core!r})"

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection pool (not an ``http_client`` you passed in)."""
        if self._owns_http:
            self._http.close()

    # -- driving the shared core

    def _drive(self, flow: Flow[T]) -> T:
        to_send: Any = None
        to_throw: Optional[BaseException] = None
        while True:
            try:
                action = flow.throw(to_throw) if to_throw is not None else flow.send(to_send)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            to_send = to_throw = None
            if isinstance(action, Send):
                try:
                    to_send = self._http.send(action.request)
                except httpx.TransportError as exc:
                    to_throw = exc
            elif isinstance(action, Sleep):
                self._sleep(action.seconds)
            elif isinstance(action, EnsureFresh):
                with self._refresh_lock:
                    if self._core.auth.wants_refresh():
                        self._drive(self._core.refresh_flow())

    def _call(self, call: Call[T]) -> T:
        return self._drive(self._core.call_flow(call))

    def _list(self, make: MakeCall[T], cursor: Optional[str]) -> SyncPage[T]:
        return paginate_sync(self._call, make, cursor)

    # -- about the client

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self._core.base_url

    @property
    def auth_mode(self) -> str:
        """How requests authenticate: ``access_token`` (personal token exchanged for a JWT),
        ``token`` (sent as it is), ``session`` (after :meth:`sign_in`) or ``none``."""
        return self._core.auth.mode

    @property
    def token_expiration(self) -> Optional[datetime]:
        """When the credential expires, from the last ``Latchkey-Token-Expiration`` header
        (for an access JWT: the JWT's expiry)."""
        return self._core.auth.token_expiration

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        content: Optional[bytes] = None,
        headers: Optional[Mapping[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Any:
        """Calls any route with the client's authentication, retries and errors; returns the
        decoded JSON (``None`` for an empty answer)."""
        return self._call(E.raw(method, path, params, json, content, headers, idempotency_key))

    def paginate(self, method: SyncListMethod[T], *args: Any, **kwargs: Any) -> Iterator[T]:
        """Iterates every item of a list method, page after page (as iterating the list
        result itself does): ``client.paginate(client.tokens.list, workspace="Workspace 1")``.
        """
        cursor = kwargs.pop("cursor", None)
        while True:
            page = method(*args, cursor=cursor, **kwargs)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -- system

    def health(self) -> Health:
        """``GET /healthz``."""
        return self._call(E.healthz())

    def ready(self) -> bool:
        """Whether ``GET /readyz`` answers ready."""
        try:
            health = self._call(E.readyz())
            return health.ok
        except Exception:
            return False

    # -- session

    def sign_in(self, username: str, password: str) -> User:
        """Signs in with a username and password; later requests use the session instead of
        the token, until :meth:`sign_out`."""
        return self._call(E.sign_in(username, password))

    def sign_out(self) -> None:
        """Ends the session (server side too); the client goes back to its token, if any."""
        self._drive(self._core.sign_out_flow())

    # -- me, workspaces

    def me(self) -> Me:
        """Who am I: the user, the organization and the workspace memberships."""
        return self._call(E.me())

    def workspaces(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> SyncPage[Workspace]:
        """Workspaces the caller may enter."""
        return self._list(lambda at: E.list_workspaces(limit, at), cursor)

    def workspace(self, workspace: str) -> Workspace:
        """One workspace, by id or name."""
        return self._call(E.get_workspace(workspace))

    def create_workspace(self, name: str) -> Workspace:
        """Creates a workspace (org admins)."""
        return self._call(E.create_workspace(name))

    # -- projects

    def create_project(
        self,
        name: str,
        description: Optional[str] = None,
        workspace: Optional[str] = None,
    ) -> Project:
        """Creates a project in ``workspace`` (id or name), or, without one, in the token's
        own workspace (``POST /projects``)."""
        return self._call(E.create_project(name, description, workspace))

    def list_projects(
        self,
        workspace: Optional[str] = None,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> SyncPage[Project]:
        """Projects of ``workspace`` (id or name), or of the token's workspace."""
        return self._list(lambda at: E.list_projects(workspace, limit, at), cursor)

    def delete_project(self, project_id: str, *, workspace: str) -> None:
        """Deletes a project of ``workspace`` (id or name)."""
        self._call(E.delete_project(project_id, workspace))

    # -- checks

    def verify(self, token: str, *, ip: Optional[str] = None) -> VerifyResult:
        """Checks a token: ``valid`` and the token (its ``metadata`` too), or the ``reason``
        it fails. Pass ``ip``, the address your own client called from, for a token with
        ``allowed_ips``. Every check counts as a use of a token with ``rate_limit`` or
        ``remaining_uses``; ``.rate_limit`` and ``.retry_after`` say where it stands."""
        return self._call(E.verify(token, ip))

    def introspect(self, token: str, *, ip: Optional[str] = None) -> Introspection:
        """RFC 7662 introspection (needs a token with the ``introspect`` scope, an admin
        token, or an org admin's session); ``ip`` as for :meth:`verify`."""
        return self._call(E.introspect(token, ip))

    def oauth_revoke(self, token: str) -> None:
        """RFC 7009 revocation of a token by its secret (the caller authenticates; a token
        may revoke itself). Unknown tokens are not an error."""
        self._call(E.oauth_revoke(token))

    def report_leaked(self, tokens: Sequence[str]) -> None:
        """Leak report: revokes every listed secret that exists, for good (it can only be
        rotated). Needs no credential; the answer is the same whatever the secrets were."""
        self._call(E.report_leaked(tokens))

    def jwks(self) -> Dict[str, Any]:
        """The public keys (JWK Set) that verify Latchkey's access JWTs."""
        return self._call(E.jwks())

    # -- audit, settings

    def audit_events(
        self,
        *,
        workspace: Optional[str] = None,
        actor: Optional[str] = None,
        token: Optional[str] = None,
        action: Optional[str] = None,
        since: Union[datetime, str, None] = None,
        until: Union[datetime, str, None] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> SyncPage[AuditEvent]:
        """The audit log, newest first, filtered by workspace id, actor user id, token id,
        action (``token.created``, ...) and time (``since`` inclusive, ``until`` exclusive)."""
        return self._list(
            lambda at: E.audit_events(workspace, actor, token, action, since, until, limit, at),
            cursor,
        )

    def instance_settings(self) -> InstanceSettings:
        """Instance limits and defaults (instance owner)."""
        return self._call(E.get_instance_settings())

    def update_instance_settings(
        self,
        *,
        max_active_tokens: Union[int, None, NotGiven] = NOT_GIVEN,
        default_token_lifetime_days: Union[int, NotGiven] = NOT_GIVEN,
    ) -> InstanceSettings:
        """Changes instance settings; ``max_active_tokens=None`` means unlimited."""
        return self._call(
            E.update_instance_settings(max_active_tokens, default_token_lifetime_days)
        )

    def token_settings(self, org: Optional[str] = None) -> TokenSettings:
        """The organization's token settings (``org`` defaults to the caller's)."""
        return self._drive(self._token_settings_flow(org))

    def _token_settings_flow(self, org: Optional[str]) -> Flow[TokenSettings]:
        if org is None:
            org = (yield from self._core.call_flow(E.me())).org.id
        return (yield from self._core.call_flow(E.get_token_settings(org)))

    def update_token_settings(
        self,
        org: Optional[str] = None,
        *,
        enabled_types: Union[Sequence[TokenType], NotGiven] = NOT_GIVEN,
        personal_token_ttl_days: Union[int, None, NotGiven] = NOT_GIVEN,
        max_tokens_per_user: Union[int, None, NotGiven] = NOT_GIVEN,
        token_creators: Union[TokenCreators, NotGiven] = NOT_GIVEN,
        recoverable_types: Union[Sequence[TokenType], NotGiven] = NOT_GIVEN,
        idle_revoke_days: Union[int, None, NotGiven] = NOT_GIVEN,
        max_token_lifetime_days: Union[int, None, NotGiven] = NOT_GIVEN,
        approval_required_types: Union[Sequence[TokenType], NotGiven] = NOT_GIVEN,
    ) -> TokenSettings:
        """Changes the organization's token settings; ``None`` means the default
        (``personal_token_ttl_days``), unlimited (``max_tokens_per_user``) or off
        (``idle_revoke_days``, ``max_token_lifetime_days``; else 1 to 3650 days).
        ``recoverable_types`` lists the types whose secrets are kept (encrypted) for
        :meth:`Tokens.reveal`; a type taken off has its kept secrets erased at once.
        ``idle_revoke_days``: tokens unused that long are revoked (reason ``idle``);
        ``max_token_lifetime_days``: no token may live longer, and lowering it fails older
        tokens at once (reason ``lifetime_policy``). ``approval_required_types``: new
        tokens of these types wait (``pending``) for another org admin's approval unless an
        org owner creates them; only org owners change it."""
        return self._drive(
            self._update_token_settings_flow(
                org,
                enabled_types,
                personal_token_ttl_days,
                max_tokens_per_user,
                token_creators,
                recoverable_types,
                idle_revoke_days,
                max_token_lifetime_days,
                approval_required_types,
            )
        )

    def _update_token_settings_flow(self, org: Optional[str], *args: Any) -> Flow[TokenSettings]:
        if org is None:
            org = (yield from self._core.call_flow(E.me())).org.id
        return (yield from self._core.call_flow(E.update_token_settings(org, *args)))


class Tokens:
    """``client.tokens``: create, list, get, update, revoke, restore, rotate and delete tokens;
    the org-wide inventory (filters, CSV export, bulk revoke) and reveal."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        workspace: str,
        name: str,
        type: TokenType = "personal",
        scopes: Optional[Sequence[Scope]] = None,
        projects: Optional[Sequence[str]] = None,
        environment: Optional[str] = None,
        expires_in_days: Optional[int] = None,
        *,
        expires_at: Union[datetime, str, None] = None,
        owner_id: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        allowed_ips: Optional[Sequence[str]] = None,
        rate_limit: Optional[RateLimitArg] = None,
        remaining_uses: Optional[int] = None,
        refill: Optional[RefillArg] = None,
    ) -> CreatedToken:
        """Creates a token in ``workspace`` (id or name). The answer's ``.token`` is the
        secret, shown this once.

        Verify-time policy, all optional: ``metadata`` (a JSON object of at most 4 KiB,
        returned by every check), ``allowed_ips`` (IPv4/IPv6 CIDRs), ``rate_limit``
        (:class:`RateLimit` or ``{"limit", "window_secs"}``), ``remaining_uses`` and its
        ``refill`` (:class:`Refill` or ``{"amount", "interval"}``)."""
        return self._client._call(
            E.create_token(
                workspace,
                name,
                type,
                scopes,
                projects,
                environment,
                expires_in_days,
                expires_at,
                owner_id,
                metadata,
                allowed_ips,
                rate_limit,
                remaining_uses,
                refill,
            )
        )

    def update(
        self,
        token_id: str,
        *,
        metadata: Union[Mapping[str, Any], None, NotGiven] = NOT_GIVEN,
        allowed_ips: Union[Sequence[str], None, NotGiven] = NOT_GIVEN,
        rate_limit: Union[RateLimitArg, None, NotGiven] = NOT_GIVEN,
        remaining_uses: Union[int, None, NotGiven] = NOT_GIVEN,
        refill: Union[RefillArg, None, NotGiven] = NOT_GIVEN,
    ) -> Token:
        """Changes a token's verify-time policy (``PATCH /api/v1/tokens/{id}``): only the
        arguments given change, and ``None`` removes a field (no metadata, any address, no
        rate limit, unlimited uses, no refill). ``remaining_uses`` counts from now on."""
        return self._client._call(
            E.update_token(token_id, metadata, allowed_ips, rate_limit, remaining_uses, refill)
        )

    def list(
        self,
        workspace: Optional[str] = None,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> SyncPage[Token]:
        """Tokens of ``workspace`` (id or name) that the caller may see; without a workspace,
        the caller's own tokens in every workspace. Iterating the result walks every page;
        ``limit`` is the page size."""
        return self._client._list(lambda at: E.list_tokens(workspace, limit, at), cursor)

    def inventory(
        self,
        *,
        type: Optional[TokenType] = None,
        state: Optional[TokenState] = None,
        workspace: Optional[str] = None,
        owner: Optional[str] = None,
        q: Optional[str] = None,
        created_before: Union[datetime, str, None] = None,
        expires_before: Union[datetime, str, None] = None,
        last_used_before: Union[datetime, str, None] = None,
        never_used: Optional[bool] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> SyncPage[Token]:
        """Every token the caller may see, across workspaces (``GET /api/v1/tokens``; org
        admins: the org's), matching every filter given: ``type``, ``state``, ``workspace``
        (id or name), ``owner`` (user id or username), ``q`` (name contains, without case),
        ``created_before`` / ``expires_before`` / ``last_used_before`` (a ``datetime`` or a
        ``YYYY-MM-DD`` string; tokens that never expire or were never used are left out) and
        ``never_used`` (``True``: only unused tokens; ``False``: only used ones). Iterating
        the result walks every page; ``limit`` is the page size."""
        filters = E._inventory_params(
            type,
            state,
            workspace,
            owner,
            q,
            created_before,
            expires_before,
            last_used_before,
            never_used,
        )
        return self._client._list(lambda at: E.token_inventory(filters, limit, at), cursor)

    def export_csv(
        self,
        *,
        type: Optional[TokenType] = None,
        state: Optional[TokenState] = None,
        workspace: Optional[str] = None,
        owner: Optional[str] = None,
        q: Optional[str] = None,
        created_before: Union[datetime, str, None] = None,
        expires_before: Union[datetime, str, None] = None,
        last_used_before: Union[datetime, str, None] = None,
        never_used: Optional[bool] = None,
    ) -> str:
        """Every token :meth:`inventory` matches, as CSV text (``?format=csv``: a header row,
        one line per token, no secrets, not paged)."""
        filters = E._inventory_params(
            type,
            state,
            workspace,
            owner,
            q,
            created_before,
            expires_before,
            last_used_before,
            never_used,
        )
        return self._client._call(E.token_inventory_csv(filters))

    def bulk_revoke(self, ids: Sequence[str]) -> BulkRevokeResult:
        """Revokes up to 1000 tokens in one transaction (``POST /api/v1/tokens/bulk-revoke``).
        Every id comes back, in ``.revoked`` or in ``.skipped`` with its ``reason``
        (``not_found``, ``forbidden``, ``already_revoked``, ``expired``, ``duplicate``)."""
        return self._client._call(E.bulk_revoke(ids))

    def reveal(self, token_id: str) -> str:
        """The current secret of a recoverable token (``Token.recoverable``; see
        ``recoverable_types`` in the token settings). Raises :class:`ConflictError`
        (``not_recoverable``) when none is kept, :class:`PermissionDeniedError` for someone
        else's personal or legacy token, :class:`RateLimitError` past the reveal throttle.
        Every reveal is audited (``token.revealed``)."""
        return self._client._call(E.reveal_token(token_id))

    def usage(self, token_id: str) -> TokenUsage:
        """How a token has been used lately: ``last_used_at``, ``last_ips`` (the last 5
        distinct client addresses, newest first) and ``daily`` (uses per UTC day over 90
        days, oldest first). Raises :class:`NotFoundError` for a token you may not see."""
        return self._client._call(E.token_usage(token_id))

    def get(self, token_id: str) -> Token:
        """One token's metadata."""
        return self._client._call(E.get_token(token_id))

    def revoke(self, token_id: str) -> Token:
        """Revokes a token: it stops working at once (it can be restored)."""
        return self._client._call(E.token_action(token_id, "revoke"))

    def restore(self, token_id: str) -> Token:
        """Re-approves a revoked token (before it expires)."""
        return self._client._call(E.token_action(token_id, "restore"))

    def approve(self, token_id: str) -> Token:
        """Approves a token pending approval: it works from now on. For org admins other
        than its creator (:class:`PermissionDeniedError` otherwise); :class:`ConflictError`
        when it is not pending."""
        return self._client._call(E.token_action(token_id, "approve"))

    def deny(self, token_id: str) -> Token:
        """Denies a token pending approval: it never works (``denied`` is final). The same
        callers and errors as :meth:`approve`."""
        return self._client._call(E.token_action(token_id, "deny"))

    def rotate(
        self,
        token_id: str,
        grace_seconds: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        *,
        expires_in_days: Optional[int] = None,
        expires_at: Union[datetime, str, None] = None,
    ) -> CreatedToken:
        """Gives a token a new secret under the same id; the old one keeps working for
        ``grace_seconds``. With an ``idempotency_key`` the call is retried safely and a retry
        gets the same secret."""
        return self._client._call(
            E.rotate_token(token_id, grace_seconds, expires_in_days, expires_at, idempotency_key)
        )

    def delete(self, token_id: str) -> None:
        """Deletes a token for good."""
        self._client._call(E.delete_token(token_id))


class Members:
    """``client.members``: workspace memberships."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self, workspace: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> SyncPage[Member]:
        """Members of a workspace (id or name)."""
        return self._client._list(lambda at: E.list_members(workspace, limit, at), cursor)

    def put(self, workspace: str, user_id: str, role: WorkspaceRole = "member") -> Member:
        """Adds a user to a workspace, or changes their role (``admin``, ``member``,
        ``viewer``)."""
        return self._client._call(E.put_member(workspace, user_id, role))

    def remove(self, workspace: str, user_id: str) -> None:
        """Removes a user from a workspace."""
        self._client._call(E.remove_member(workspace, user_id))


class Users:
    """``client.users``: the organization's users (org admins)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def list(
        self,
        *,
        kind: Optional[UserKind] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> SyncPage[User]:
        """Users of the organization; ``kind="service"`` lists the service accounts."""
        return self._client._list(lambda at: E.list_users(limit, at, kind), cursor)

    def create(
        self,
        username: str,
        password: str,
        role: OrgRole = "member",
        *,
        display_name: Optional[str] = None,
        email: Optional[str] = None,
    ) -> User:
        """Creates a user with an org role (``owner``, ``admin``, ``member``)."""
        return self._client._call(E.create_user(username, password, role, display_name, email))

    def create_service_account(
        self,
        username: str,
        *,
        display_name: Optional[str] = None,
        role: OrgRole = "member",
        email: Optional[str] = None,
    ) -> User:
        """Creates a service account: no password, it never signs in. Org admins create its
        personal tokens with ``client.tokens.create(..., owner_id=account.id)``; they keep
        working whoever leaves, until the account is deactivated."""
        return self._client._call(
            E.create_user(username, None, role, display_name, email, "service")
        )

    def get(self, user_id: str) -> User:
        """One user."""
        return self._client._call(E.get_user(user_id))

    def update(
        self,
        user_id: str,
        *,
        active: Union[bool, NotGiven] = NOT_GIVEN,
        role: Union[OrgRole, NotGiven] = NOT_GIVEN,
        display_name: Union[str, None, NotGiven] = NOT_GIVEN,
        email: Union[str, None, NotGiven] = NOT_GIVEN,
        password: Union[str, NotGiven] = NOT_GIVEN,
    ) -> User:
        """Changes a user; only the arguments given are sent (``None`` clears a field)."""
        return self._client._call(
            E.update_user(user_id, active, role, display_name, email, password)
        )

    def deactivate(self, user_id: str) -> User:
        """Deactivates a user: their sessions end and their tokens stop working at once."""
        return self.update(user_id, active=False)

    def reactivate(self, user_id: str) -> User:
        """Reactivates a user; their tokens that are not revoked or expired work again."""
        return self.update(user_id, active=True)


class Webhooks:
    """``client.webhooks``: webhook endpoints for lifecycle events (org admins)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        url: str,
        events: Sequence[EventType],
        *,
        description: Optional[str] = None,
        enabled: Optional[bool] = None,
    ) -> CreatedWebhook:
        """Creates an endpoint; the answer's ``.secret`` (``whsec_…``) is shown this once."""
        return self._client._call(E.create_webhook(url, events, description, enabled))

    def list(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> SyncPage[Webhook]:
        """The organization's endpoints, newest first."""
        return self._client._list(lambda at: E.list_webhooks(limit, at), cursor)

    def get(self, webhook_id: str) -> Webhook:
        """One endpoint."""
        return self._client._call(E.get_webhook(webhook_id))

    def update(
        self,
        webhook_id: str,
        *,
        url: Union[str, NotGiven] = NOT_GIVEN,
        events: Union[Sequence[EventType], NotGiven] = NOT_GIVEN,
        description: Union[str, None, NotGiven] = NOT_GIVEN,
        enabled: Union[bool, NotGiven] = NOT_GIVEN,
    ) -> Webhook:
        """Changes an endpoint; only the arguments given are sent."""
        return self._client._call(E.update_webhook(webhook_id, url, events, description, enabled))

    def delete(self, webhook_id: str) -> None:
        """Deletes an endpoint and its deliveries."""
        self._client._call(E.delete_webhook(webhook_id))

    def test(self, webhook_id: str) -> WebhookDelivery:
        """Queues a ``webhook.test`` message to the endpoint."""
        return self._client._call(E.test_webhook(webhook_id))

    def deliveries(
        self, webhook_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> SyncPage[WebhookDelivery]:
        """Deliveries to the endpoint, newest first, with their attempts."""
        return self._client._list(lambda at: E.list_deliveries(webhook_id, limit, at), cursor)

    def redeliver(self, webhook_id: str, delivery_id: str) -> WebhookDelivery:
        """Sends a delivery's message again (same ``webhook-id``) as a new delivery."""
        return self._client._call(E.redeliver(webhook_id, delivery_id))
