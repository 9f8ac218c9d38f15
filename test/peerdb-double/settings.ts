/** The PeerDB dynamic settings the double honours, read from a mirror's env as PeerDB's workers read them. */

/** Lets an initial snapshot load into a destination table that already holds rows. */
export const ALLOW_NON_EMPTY_TABLES = 'PEERDB_CLICKHOUSE_INITIAL_LOAD_ALLOW_NON_EMPTY_TABLES';

/** Makes the destination columns of nullable source columns Nullable. */
export const NULLABLE = 'PEERDB_NULLABLE';

/** A boolean setting, parsed like Go's strconv.ParseBool; absent means false (both settings default to false). */
export function envFlag(env: Record<string, string>, name: string): boolean {
  return ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(env[name] ?? '');
}
