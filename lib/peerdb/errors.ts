/**
 * PeerDB's answers, typed by what a caller should do about them. The class names double as Temporal failure
 * types, so workflows decide about retries through nonRetryableErrorTypes, not by parsing messages.
 */
export class PeerDbError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = new.target.name;
  }
}

/** 5xx, refused connection, timeout: try again later. */
export class PeerDbUnavailable extends PeerDbError {}

/** 400: the request itself is wrong; repeating it cannot help. */
export class PeerDbInvalidRequest extends PeerDbError {}

/** 404 on a mirror. Success where the operation is idempotent (drop), a signal otherwise. */
export class MirrorNotFound extends PeerDbError {}

/** 409 on create. Success where the operation is idempotent (create). */
export class MirrorAlreadyExists extends PeerDbError {}

/** The mirror reached STATUS_FAILED: PeerDB gave up on it. */
export class MirrorFailed extends PeerDbError {}

/** The breaker in front of a dependency is open: the call was not made. Retry after `retryAfterMs`. */
export class CircuitOpen extends Error {
  constructor(readonly dependency: string, readonly retryAfterMs: number) {
    super(`circuit breaker for ${dependency} is open; next attempt in ${Math.ceil(retryAfterMs / 1000)} s`);
    this.name = 'CircuitOpen';
  }
}
