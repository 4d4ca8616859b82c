/**
 * Errors. Every error answer becomes an {@link APIError} subclass chosen by its status,
 * with the server's `status`, stable `code` and human `message`. No error holds a secret.
 */

/** Base class of every error this SDK throws. */
export class LatchkeyError extends Error {
  override name = "LatchkeyError";
}

/** The client was set up wrongly (no URL, no token, ...). */
export class ConfigurationError extends LatchkeyError {
  override name = "ConfigurationError";
}

/** The server could not be reached, or the connection broke before an answer. */
export class APIConnectionError extends LatchkeyError {
  override name = "APIConnectionError";
}

/** The request timed out. */
export class APITimeoutError extends APIConnectionError {
  override name = "APITimeoutError";
}

/** What the server said about an error (`{"error": {...}}`). */
export interface ErrorBody {
  code?: string;
  message?: string;
  field?: string;
  limit?: string;
  [key: string]: unknown;
}

/** The server answered with an error status. */
export class APIError extends LatchkeyError {
  override name = "APIError";
  /** The HTTP status, e.g. 404. */
  readonly status: number;
  /** The server's stable error code, e.g. `not_found`, `limit_exceeded`. */
  readonly code: string;
  /** For `invalid_field` (422): the field. */
  readonly field: string | undefined;
  /** For `limit_exceeded` (409): the limit that was hit. */
  readonly limit: string | undefined;
  /** Seconds the server asked to wait (429, 503), when it said. */
  readonly retryAfter: number | undefined;
  /** The whole `error` object, for fields a newer server adds. */
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody, retryAfter?: number) {
    const code = body.code ?? `http_${status}`;
    const message = body.message ?? `the server answered ${status}`;
    super(message);
    this.status = status;
    this.code = code;
    this.field = body.field;
    this.limit = body.limit;
    this.retryAfter = retryAfter;
    this.body = body;
  }

  override toString(): string {
    return `${this.name}: ${this.status} ${this.code}: ${this.message}`;
  }
}

/** 400: the request was malformed. */
export class BadRequestError extends APIError {
  override name = "BadRequestError";
}
/** 401: no credential, or one that is not accepted. */
export class AuthenticationError extends APIError {
  override name = "AuthenticationError";
}
/** 403: authenticated but not allowed. */
export class PermissionDeniedError extends APIError {
  override name = "PermissionDeniedError";
}
/** 404: no such object, or not visible to the caller. */
export class NotFoundError extends APIError {
  override name = "NotFoundError";
}
/** 409: a conflict or a limit (`.limit`). */
export class ConflictError extends APIError {
  override name = "ConflictError";
}
/** 422: a missing or invalid field (`.field`), or a policy refusal. */
export class ValidationError extends APIError {
  override name = "ValidationError";
}
/** 429: throttled (`.retryAfter`). */
export class RateLimitError extends APIError {
  override name = "RateLimitError";
}
/** 5xx: the server failed or is unavailable. */
export class ServerError extends APIError {
  override name = "ServerError";
}

const BY_STATUS: Record<number, typeof APIError> = {
  400: BadRequestError,
  401: AuthenticationError,
  403: PermissionDeniedError,
  404: NotFoundError,
  409: ConflictError,
  422: ValidationError,
  429: RateLimitError,
};

/** The error class for an HTTP error status. */
export function errorClassFor(status: number): typeof APIError {
  if (status >= 500) return ServerError;
  return BY_STATUS[status] ?? APIError;
}
