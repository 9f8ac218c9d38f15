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

/**
 * PeerDB answered, but could not reach a database it needs (a peer's PostgreSQL or ClickHouse): it validates
 * peers and mirrors by connecting, and answers 400 or 500 with the connection error. Temporary, like an outage,
 * but says nothing about PeerDB's health, so the breaker does not count it.
 */
export class PeerUnreachable extends PeerDbError {}

/** 404 on a mirror. Success where the operation is idempotent (drop), a signal otherwise. */
export class MirrorNotFound extends PeerDbError {}

/**
 * 409 on create. Success where the operation is idempotent (create), unless `stillDropping`: PeerDB removed the
 * mirror's catalog row (status answers 404) but its Temporal workflow has not ended yet.
 */
export class MirrorAlreadyExists extends PeerDbError {
  get stillDropping(): boolean {
    return /workflow already exists for flow/.test(this.message);
  }
}

/** The mirror reached STATUS_FAILED: PeerDB gave up on it. */
export class MirrorFailed extends PeerDbError {}

/**
 * The mirror is in a state PeerDB never leaves by itself: a table of its create is gone or has no usable key, and
 * PeerDB's setup retries that for ever (flow/workflows/setup_flow.go ensurePullability). Drop it and create it
 * again without those tables.
 */
export class MirrorWedged extends PeerDbError {}

/** A wait on the mirror passed MIRROR_STALL_TIMEOUT without progress while PeerDB answered; the message says why. */
export class MirrorStalled extends PeerDbError {}

/** The breaker in front of a dependency is open: the call was not made. Retry after `retryAfterMs`. */
export class CircuitOpen extends Error {
  constructor(readonly dependency: string, readonly retryAfterMs: number) {
    super(`circuit breaker for ${dependency} is open; next attempt in ${Math.ceil(retryAfterMs / 1000)} s`);
    this.name = 'CircuitOpen';
  }
}
