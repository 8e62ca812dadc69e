/**
 * Error codes shared by the gateway, the CLI and the workflows. The gateway answers every error as
 * `{ error: { code, message } }`; workflows raise ApplicationFailures whose `type` is a failure type
 * below, which the gateway maps back to a code.
 */
export const ERROR_CODES = {
  BAD_REQUEST: 400,
  INVALID_FUNCTION_CONFIG: 400,
  INVALID_ARCHIVE: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  FUNCTION_NOT_FOUND: 404,
  NO_ACTIVE_VERSION: 404,
  VERSION_NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  /** A function at its scale.max with its queue full: try again after Retry-After. */
  TOO_MANY_REQUESTS: 429,
  HEADERS_TOO_LARGE: 431,
  /** nginx's code for a client that went away before the answer; only ever seen in logs. */
  CLIENT_CLOSED_REQUEST: 499,
  BUILD_FAILED: 422,
  DEPENDENCY_INSTALL_FAILED: 422,
  START_FAILED: 422,
  DEPLOY_FAILED: 500,
  INTERNAL: 500,
  UPSTREAM_UNAVAILABLE: 502,
  COLD_START_FAILED: 503,
  PLATFORM_UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

/** ApplicationFailure types raised by activities and workflows, each mapped to an error code. */
export const FAILURE_TYPES = {
  InvalidArchive: 'INVALID_ARCHIVE',
  InvalidConfig: 'INVALID_FUNCTION_CONFIG',
  BuildFailed: 'BUILD_FAILED',
  DependencyInstallFailed: 'DEPENDENCY_INSTALL_FAILED',
  FunctionNotFound: 'FUNCTION_NOT_FOUND',
  VersionNotFound: 'VERSION_NOT_FOUND',
  HealthCheckFailed: 'COLD_START_FAILED',
  VersionStartFailed: 'START_FAILED',
  BaseImageMissing: 'PLATFORM_UNAVAILABLE',
  /** The Docker engine does not answer: a deploy waits for it, a cold start answers 503. */
  EngineUnavailable: 'PLATFORM_UNAVAILABLE',
  /** The entity refused a request that clashes with one under way (a second removal). */
  Conflict: 'CONFLICT',
  /** A cold start's version was replaced by a deploy while it started: the gateway routes again. */
  VersionSuperseded: 'COLD_START_FAILED',
  BuildContextMissing: 'DEPLOY_FAILED',
  DeployFailed: 'DEPLOY_FAILED',
} as const satisfies Record<string, ErrorCode>;

export type FailureType = keyof typeof FAILURE_TYPES;

export function codeForFailureType(type: string | undefined | null): ErrorCode | undefined {
  return type && type in FAILURE_TYPES ? FAILURE_TYPES[type as FailureType] : undefined;
}

/** An error with a code the gateway can answer with, raised by services and mapped once in app.ts. */
export class PlatError extends Error {
  readonly code: ErrorCode;
  /** What caused it, kept for the log of an answer ≥ 500; never sent to the client. */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PlatError';
    this.code = code;
  }
  get status(): number {
    return ERROR_CODES[this.code];
  }
  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}
