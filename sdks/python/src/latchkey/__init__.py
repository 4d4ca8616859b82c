"""Latchkey: the Python SDK for the self-hosted API token service.

.. code-block:: python

    from latchkey import Client

    client = Client(CLUSTER_URL, API_TOKEN)  # or Client() with LATCHKEY_URL, LATCHKEY_API_KEY
    project = client.create_project(name="Fraud Demo", description="This is an Onboarding Demo")

See ``docs/sdk-python.md`` in the repository for the full guide.
"""

from ._async.client import AsyncClient, AsyncMembers, AsyncTokens, AsyncUsers, AsyncWebhooks
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    LatchkeyError,
    NotFoundError,
    PermissionDeniedError,
    RateLimited,
    RateLimitError,
    ServerError,
    ValidationError,
)
from ._format import TOKEN_PATTERN, is_well_formed, token_type_of
from ._http import NOT_GIVEN, NotGiven, TokenExpiringWarning
from ._models import (
    EVENT_TYPES,
    SCOPES,
    TOKEN_STATES,
    TOKEN_TYPES,
    AuditEvent,
    BulkRevokeResult,
    CreatedToken,
    CreatedWebhook,
    DailyUse,
    EventType,
    Health,
    InstanceSettings,
    Introspection,
    IpUse,
    Me,
    Member,
    Membership,
    Org,
    OrgRole,
    Page,
    Project,
    RateLimit,
    RateLimitStatus,
    Refill,
    RefillInterval,
    Scope,
    SkippedToken,
    SkipReason,
    Token,
    TokenCreators,
    TokenSettings,
    TokenState,
    TokenType,
    TokenUsage,
    User,
    UserKind,
    VerifyReason,
    VerifyResult,
    Webhook,
    WebhookDelivery,
    Workspace,
    WorkspaceRole,
)
from ._pagination import AsyncPage, AsyncPaginator, SyncPage
from ._redact import install as _install_log_redaction
from ._sync.client import Client, Members, Tokens, Users, Webhooks
from ._version import __version__

_install_log_redaction()

__all__ = [
    "__version__",
    # clients
    "Client",
    "AsyncClient",
    "Tokens",
    "Members",
    "Users",
    "AsyncTokens",
    "AsyncMembers",
    "AsyncUsers",
    "Webhooks",
    "AsyncWebhooks",
    "NOT_GIVEN",
    "NotGiven",
    # exceptions
    "LatchkeyError",
    "ConfigurationError",
    "APIConnectionError",
    "APITimeoutError",
    "APIError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ValidationError",
    "RateLimitError",
    "RateLimited",
    "ServerError",
    "TokenExpiringWarning",
    # models
    "Page",
    "SyncPage",
    "AsyncPage",
    "AsyncPaginator",
    "Token",
    "CreatedToken",
    "BulkRevokeResult",
    "DailyUse",
    "IpUse",
    "TokenUsage",
    "SkippedToken",
    "SkipReason",
    "User",
    "UserKind",
    "Org",
    "Membership",
    "Me",
    "Workspace",
    "Member",
    "Project",
    "RateLimit",
    "RateLimitStatus",
    "Refill",
    "RefillInterval",
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
    "TokenType",
    "TokenState",
    "Scope",
    "VerifyReason",
    "OrgRole",
    "WorkspaceRole",
    "TokenCreators",
    "TOKEN_TYPES",
    "TOKEN_STATES",
    "SCOPES",
    # token format
    "TOKEN_PATTERN",
    "is_well_formed",
    "token_type_of",
]
