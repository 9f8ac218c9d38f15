/** The lease TTL of the fault tests and the soak. */
export const TTL_MS = 3000;

/** Short leases and polls, so that a failover takes seconds (fault matrix and soak). No vitest here: bench/ uses it. */
export const FAST_ELECTION = {
  LEADER_ELECTION_TTL: String(TTL_MS / 1000),
  LEADER_ELECTION_INTERVAL: '1',
  OUTBOX_POLL_INTERVAL: '1',
  RECONNECT_DELAY: '0.5',
  MAX_RECONNECT_ATTEMPTS: '0',
};
