/**
 * EchoDB's configuration: environment variables, with a `.env` file under them, validated once at start-up and
 * then passed down as one typed, frozen object. Nothing else in EchoDB reads the environment.
 * `.env.example` documents every variable.
 */
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { DEFAULT_VERIFY_BATCH_SIZE, MAX_VERIFY_BATCH_SIZE } from './workflow-safe/batches.js';

export interface LoadConfigOptions {
  /** The real environment; it wins over the file. */
  env?: NodeJS.ProcessEnv;
  /** Path of the `.env` file (default: ECHODB_ENV_FILE, else `.env` in the current directory); false reads none. */
  envFile?: string | false;
}

/** Every bad variable, one line each, so that an operator fixes them all in one go. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  ${problem}`).join('\n')}`);
  }
}

// Field builders. Each reads one variable's text and reports at most one problem, worded
// `"<given>" is not <what>; expected <what it accepts>`; the variable's name is put in front by loadConfig.

function parsed<T>(fallback: T, convert: (raw: string) => T | undefined, notA: string, expected: string) {
  return z.string().optional().transform((raw, ctx) => {
    if (raw === undefined) return fallback;
    const value = convert(raw);
    if (value === undefined) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw)} is not ${notA}; expected ${expected}` });
      return z.NEVER;
    }
    return value;
  });
}

/** A whole number from `min` to `max` as written (digits only), or undefined. */
export function wholeNumber(raw: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  return value >= min && value <= max ? value : undefined;
}

/** The most rows one retention DELETE takes (RETENTION_BATCH_SIZE, `echodb cleanup --batch-size`). */
export const RETENTION_BATCH_SIZE_MAX = 100_000;

function integer<Fallback extends number | undefined>(
  fallback: Fallback,
  notA: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
) {
  const expected =
    max === Number.MAX_SAFE_INTEGER ? `an integer of ${min} or more` : `an integer from ${min} to ${max}`;
  return parsed<number | Fallback>(fallback, (raw) => wholeNumber(raw, min, max), notA, expected);
}

const text = (fallback: string) => z.string().default(fallback);
const optionalText = () => z.string().optional();
const port = (fallback: number) => integer(fallback, 'a port', 1, 65535);
/** Unset means the config takes another variable's value. */
const optionalPort = () => integer(undefined, 'a port', 1, 65535);
const positiveInt = (fallback: number) => integer(fallback, 'a positive integer', 1);
const nonNegativeInt = (fallback: number) => integer(fallback, 'a non-negative integer', 0);

const toMs = (seconds: number) => Math.round(seconds * 1000);
/** Seconds as written in the environment (decimals allowed), in milliseconds; undefined for anything else. */
const secondsAsMs = (raw: string) => (/^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(raw) ? toMs(Number(raw)) : undefined);

/** Seconds in the environment (decimals allowed), milliseconds in the config. */
function seconds(fallback: number, { allowZero = true } = {}) {
  const convert = (raw: string) => {
    const ms = secondsAsMs(raw);
    return ms === undefined || (ms === 0 && !allowZero) ? undefined : ms;
  };
  const expected = allowZero ? 'a number of seconds of 0 or more' : 'a number of seconds above 0';
  return parsed(toMs(fallback), convert, 'a duration', `${expected}, such as 30 or 0.5`);
}
/** A period or timeout for which 0 makes no sense. */
const positiveSeconds = (fallback: number) => seconds(fallback, { allowZero: false });

/** The period of something that may be turned off: seconds, or 0 or `off` for never (null in the config). */
function periodOrOff(fallback: number) {
  const convert = (raw: string) => {
    if (raw.trim().toLowerCase() === 'off') return null;
    const ms = secondsAsMs(raw);
    return ms === 0 ? null : ms;
  };
  return parsed<number | null>(toMs(fallback), convert, 'a period', 'a number of seconds above 0, such as 86400, or 0 or off for never');
}

/** One of a few words, matched case-insensitively. */
function oneOf<const Values extends readonly [string, ...string[]]>(
  values: Values,
  fallback: Values[number],
  notA: string,
) {
  const convert = (raw: string): Values[number] | undefined =>
    values.find((value) => value === raw.trim().toLowerCase());
  return parsed(fallback, convert, notA, `one of ${values.join(', ')}`);
}

/** Comma-separated; items are trimmed and empty ones dropped. */
function list(fallback: string[], { atLeastOne = false } = {}) {
  const convert = (raw: string) => {
    const items = raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
    return atLeastOne && items.length === 0 ? undefined : items;
  };
  const expected = 'a comma-separated list with at least one name, such as public,sales';
  return parsed(fallback, convert, 'a list of names', expected);
}

/** true/false (also 1/0, yes/no, on/off). */
function flag(fallback: boolean) {
  const convert = (raw: string) => {
    const word = raw.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(word)) return true;
    if (['false', '0', 'no', 'off'].includes(word)) return false;
    return undefined;
  };
  return parsed(fallback, convert, 'a yes-or-no value', 'true or false');
}

/** A number of at least `min`, decimals allowed. */
function decimal(fallback: number, min: number, notA: string) {
  const convert = (raw: string) => {
    const value = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(raw) ? Number(raw) : NaN;
    return value >= min ? value : undefined;
  };
  return parsed(fallback, convert, notA, `a number of ${min} or more, such as 2 or 1.5`);
}

/** The path of a file EchoDB can read (a certificate or a key), checked at start-up; unset means none. */
function readableFile() {
  const convert = (raw: string) => {
    try {
      accessSync(raw, fsConstants.R_OK);
      return raw;
    } catch {
      return undefined;
    }
  };
  return parsed<string | undefined>(undefined, convert, 'a readable file', 'the path of a PEM file that this process can read');
}

/** PeerDB only accepts these names for peers and mirrors. */
function peerName(fallback: string) {
  const convert = (raw: string) => (/^[a-z_][a-z0-9_]*$/.test(raw) ? raw : undefined);
  return parsed(
    fallback,
    convert,
    'a PeerDB name',
    'lowercase letters, digits and underscores, not starting with a digit (PeerDB requires ^[a-z_][a-z0-9_]*$)',
  );
}

/** An http or https URL, kept without its trailing slash so that paths can be appended. */
function httpUrl(fallback: string) {
  const convert = (raw: string) => {
    const url = URL.canParse(raw) ? new URL(raw) : undefined;
    return url?.protocol === 'http:' || url?.protocol === 'https:' ? raw.trim().replace(/\/+$/, '') : undefined;
  };
  return parsed(fallback, convert, 'an http(s) URL', 'an address such as http://flow-api:8113');
}

/**
 * An S3 endpoint of the one form PeerDB builds the staged files' URLs from (`<endpoint>/<bucket>/<key>`,
 * connectors/utils/aws.go FileURLForS3Service); for any other it silently builds AWS URLs instead.
 */
function s3Endpoint() {
  const convert = (raw: string) => (/^https?:\/\/[a-zA-Z0-9.-]+(:\d+)?$/.test(raw.trim()) ? raw.trim() : undefined);
  return parsed<string | undefined>(
    undefined,
    convert,
    'an S3 endpoint PeerDB accepts',
    'http(s)://host or http(s)://host:port, without a path or a trailing slash, such as http://minio:9000',
  );
}

/** A name template: it must hold one of `required`, and no placeholder but {schema} and {table}. */
function template<Fallback extends string | undefined>(fallback: Fallback, required: readonly string[]) {
  const convert = (raw: string) => {
    const placeholders = raw.match(/\{[^{}]*\}/g) ?? [];
    const known = placeholders.every((placeholder) => placeholder === '{schema}' || placeholder === '{table}');
    return known && required.some((placeholder) => raw.includes(placeholder)) ? raw : undefined;
  };
  return parsed<string | Fallback>(
    fallback,
    convert,
    `a template with ${required.join(' or ')}`,
    `text containing ${required.join(' or ')}, and no other placeholder than {schema} and {table}`,
  );
}

const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

const variables = z
  .object({
    POSTGRES_HOST: text('localhost'),
    POSTGRES_PORT: port(5432),
    POSTGRES_DB: text('postgres'),
    POSTGRES_USER: text('postgres'),
    POSTGRES_PASSWORD: text(''),
    POSTGRES_SSLMODE: oneOf(['disable', 'require', 'verify-full'], 'disable', 'an SSL mode'),
    POSTGRES_CA_FILE: readableFile(),
    POSTGRES_CERT_FILE: readableFile(),
    POSTGRES_KEY_FILE: readableFile(),
    POSTGRES_PEER_HOST: optionalText(),
    POSTGRES_PEER_PORT: optionalPort(),

    CLICKHOUSE_HOST: text('localhost'),
    CLICKHOUSE_PORT: optionalPort(),
    CLICKHOUSE_DB: text('default'),
    CLICKHOUSE_USER: text('default'),
    CLICKHOUSE_PASSWORD: text(''),
    CLICKHOUSE_SECURE: flag(false),
    CLICKHOUSE_CA_FILE: readableFile(),
    CLICKHOUSE_CERT_FILE: readableFile(),
    CLICKHOUSE_KEY_FILE: readableFile(),
    CLICKHOUSE_TLS_SERVER_NAME: optionalText(),
    CLICKHOUSE_PEER_HOST: optionalText(),
    CLICKHOUSE_PEER_PORT: optionalPort(),
    PEERDB_S3_BUCKET: optionalText(),
    PEERDB_S3_ENDPOINT: s3Endpoint(),
    PEERDB_S3_REGION: text('us-east-1'),
    PEERDB_S3_ACCESS_KEY_ID: optionalText(),
    PEERDB_S3_SECRET_ACCESS_KEY: optionalText(),

    REDIS_HOST: optionalText(),
    REDIS_PORT: port(6379),
    REDIS_PASSWORD: optionalText(),
    REDIS_DB: integer(0, 'a Redis database number', 0, 15),

    PEERDB_API_URL: httpUrl('http://flow-api:8113'),
    PEERDB_REQUEST_TIMEOUT: positiveSeconds(30),
    PEERDB_DROP_TIMEOUT: positiveSeconds(480),
    SOURCE_PEER_NAME: peerName('postgres_source'),
    TARGET_PEER_NAME: peerName('clickhouse_target'),

    SYNC_SCHEMA: list(['public'], { atLeastOne: true }),
    EXCLUDED_TABLES: list([]),

    MIRROR_STRATEGY: oneOf(['per-schema', 'per-table'], 'per-schema', 'a mirror strategy'),
    MIRROR_NAME_TEMPLATE: template(undefined, ['{schema}', '{table}']),
    DESTINATION_TABLE_TEMPLATE: template('{table}', ['{table}']),
    DESTINATION_ON_DROP: oneOf(['keep', 'rename', 'drop'], 'rename', 'a drop policy'),
    COALESCE_WINDOW: seconds(2),
    MISSING_REPLICA_IDENTITY: oneOf(['skip', 'set-full'], 'skip', 'a replica identity policy'),
    MIRROR_STALL_TIMEOUT: positiveSeconds(1800),
    DESTINATION_CLAIM_WAIT: seconds(120),

    WORKER_ID: z.string().default(() => `${hostname()}-${process.pid}`),
    LEADER_ELECTION_TTL: positiveSeconds(30),
    LEADER_ELECTION_INTERVAL: positiveSeconds(10),
    OUTBOX_POLL_INTERVAL: positiveSeconds(5),
    OUTBOX_BATCH_SIZE: integer(100, 'a batch size', 1, 1000),

    PEERDB_FAILURE_THRESHOLD: positiveInt(5),
    PEERDB_SUCCESS_THRESHOLD: positiveInt(2),
    PEERDB_TIMEOUT: positiveSeconds(60),
    POSTGRES_FAILURE_THRESHOLD: positiveInt(3),
    POSTGRES_SUCCESS_THRESHOLD: positiveInt(1),
    POSTGRES_TIMEOUT: positiveSeconds(30),

    MAX_RETRIES: nonNegativeInt(3),
    RETRY_DELAY: seconds(2),
    RETRY_BACKOFF: decimal(2, 1, 'a backoff multiplier'),
    RECONNECT_DELAY: positiveSeconds(5),
    MAX_RECONNECT_ATTEMPTS: nonNegativeInt(10),

    VERIFY_DELAY: seconds(5),
    VERIFY_ATTEMPTS: positiveInt(3),
    VERIFY_INTERVAL: positiveSeconds(10),
    CONSISTENCY_CHECK_INTERVAL: positiveSeconds(3600),
    CONSISTENCY_CHECKER_PORT: port(8090),
    VERIFY_CONCURRENCY: integer(4, 'a concurrency', 1, 100),
    VERIFY_BATCH_SIZE: integer(DEFAULT_VERIFY_BATCH_SIZE, 'a batch size', 1, MAX_VERIFY_BATCH_SIZE),

    VERIFY_MODE: oneOf(['count', 'checksum'], 'count', 'a verification mode'),
    DIFF_SETTLE_DELAY: seconds(30),
    DIFF_RECHECKS: integer(3, 'a number of re-checks', 0, 20),
    DIFF_EXAMPLES: integer(20, 'a number of example rows', 1, 1000),
    DIFF_QUERY_TIMEOUT: positiveSeconds(600),

    RETENTION_DAYS: integer(7, 'a number of days', 1, 36500),
    RETENTION_BATCH_SIZE: integer(1000, 'a batch size', 1, RETENTION_BATCH_SIZE_MAX),
    CLEANUP_INTERVAL: periodOrOff(86_400),

    SLOT_CHECK_INTERVAL: positiveSeconds(60),
    SLOT_WAL_WARN_MB: nonNegativeInt(5000),
    SLOT_INACTIVE_WARN_SECONDS: seconds(900),

    HEALTH_PORT: port(8080),
    HEALTH_CHECK_HOST: optionalText(),
    CONSISTENCY_CHECKER_HOST: optionalText(),
    API_TOKEN: optionalText(),
    API_VERIFY_WAIT: seconds(30),

    TEMPORAL_ADDRESS: text('temporal:7233'),
    TEMPORAL_NAMESPACE: text('default'),
    TEMPORAL_TASK_QUEUE: text('echodb'),

    LOG_LEVEL: oneOf(logLevels, 'info', 'a log level'),
    LOG_FILE: optionalText(),
  })
  .superRefine((env, ctx) => {
    const problem = (variable: string, message: string) => ctx.addIssue({ code: 'custom', path: [variable], message });
    for (const side of ['POSTGRES', 'CLICKHOUSE'] as const) {
      const [cert, key] = [`${side}_CERT_FILE`, `${side}_KEY_FILE`] as const;
      if ((env[cert] === undefined) !== (env[key] === undefined)) {
        const [set, unset] = env[cert] === undefined ? [key, cert] : [cert, key];
        problem(unset, `is unset while ${set} is set; expected both (a client certificate and its private key) or neither`);
      }
    }
    const tlsFiles = (side: 'POSTGRES' | 'CLICKHOUSE') =>
      (['CA_FILE', 'CERT_FILE', 'KEY_FILE'] as const).map((name) => `${side}_${name}` as const).filter((name) => env[name] !== undefined);
    for (const name of env.POSTGRES_SSLMODE === 'disable' ? tlsFiles('POSTGRES') : []) {
      problem(name, 'is set but POSTGRES_SSLMODE is disable; expected POSTGRES_SSLMODE=require or verify-full, or no TLS files');
    }
    for (const name of env.CLICKHOUSE_SECURE ? [] : [...tlsFiles('CLICKHOUSE'), ...(env.CLICKHOUSE_TLS_SERVER_NAME ? ['CLICKHOUSE_TLS_SERVER_NAME'] : [])]) {
      problem(name, 'is set but CLICKHOUSE_SECURE is not true; expected CLICKHOUSE_SECURE=true, or no TLS settings');
    }
  })
  .superRefine((env, ctx) => {
    // PEERDB_S3_BUCKET decides whether the ClickHouse peer carries its own staging; the rest only go with it.
    const problem = (variable: string, message: string) => ctx.addIssue({ code: 'custom', path: [variable], message });
    const stagingParts = ['PEERDB_S3_ENDPOINT', 'PEERDB_S3_ACCESS_KEY_ID', 'PEERDB_S3_SECRET_ACCESS_KEY'] as const;
    if (env.PEERDB_S3_BUCKET === undefined) {
      for (const name of stagingParts.filter((part) => env[part] !== undefined)) {
        problem(name, "is set while PEERDB_S3_BUCKET is unset; expected PEERDB_S3_BUCKET too (without it the ClickHouse peer carries no staging and PeerDB's own PEERDB_CLICKHOUSE_AWS_* settings apply)");
      }
      return;
    }
    for (const name of ['PEERDB_S3_ACCESS_KEY_ID', 'PEERDB_S3_SECRET_ACCESS_KEY'] as const) {
      if (env[name] !== undefined) continue;
      problem(name, 'is unset while PEERDB_S3_BUCKET is set; expected the key pair PeerDB and ClickHouse read the staging bucket with (docker-compose.yml gives MINIO_ROOT_USER and MINIO_ROOT_PASSWORD)');
    }
  })
  .superRefine(
    (env, ctx) => {
      const { LEADER_ELECTION_INTERVAL: intervalMs, LEADER_ELECTION_TTL: ttlMs } = env;
      if (intervalMs < ttlMs) return;
      ctx.addIssue({
        code: 'custom',
        path: ['LEADER_ELECTION_INTERVAL'],
        message: `${intervalMs / 1000} seconds is not less than LEADER_ELECTION_TTL (${ttlMs / 1000} seconds); `
          + 'expected the leader to renew its lease before the lease runs out',
      });
    },
    // Compared only when both are valid, and reported together with the problems of the other variables.
    {
      when: ({ issues }) =>
        issues.every(({ path }) => !['LEADER_ELECTION_TTL', 'LEADER_ELECTION_INTERVAL'].includes(String(path?.[0]))),
    },
  );

type Variables = z.output<typeof variables>;

/**
 * The original manual's names for variables EchoDB names otherwise: either spelling works; both set to different
 * values is an error.
 */
export const VARIABLE_ALIASES: Readonly<Record<string, keyof z.input<typeof variables>>> = Object.freeze({
  CLICKHOUSE_DATABASE: 'CLICKHOUSE_DB',
  CLICKHOUSE_NATIVE_PORT: 'CLICKHOUSE_PEER_PORT',
  HEALTH_CHECK_PORT: 'HEALTH_PORT',
});

/** The original manual's TEMPORAL_HOST and TEMPORAL_PORT, which make TEMPORAL_ADDRESS when it is unset. */
const TEMPORAL_PARTS = ['TEMPORAL_HOST', 'TEMPORAL_PORT'] as const;

/**
 * The original manual's variables that EchoDB accepts for the manual's sake and does not read, whatever their
 * value: PeerDB's SQL interface ("nexus", psql on port 9900), through which the original created mirrors, where
 * EchoDB uses the Flow API (PEERDB_API_URL, another service on another port, so they cannot give its default); and
 * two settings of the original consistency checker that it read but never used.
 */
export const MANUAL_VARIABLES_NOT_USED: readonly string[] = Object.freeze([
  'PEERDB_HOST',
  'PEERDB_PORT',
  'PEERDB_USER',
  'PEERDB_PASSWORD',
  'CONSISTENCY_SAMPLE_SIZE',
  'CONSISTENCY_MAX_LAG',
]);

/** The names of every environment variable EchoDB reads (docker-compose.yml passes each one on). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze([
  ...Object.keys(variables.shape),
  ...Object.keys(VARIABLE_ALIASES),
  ...TEMPORAL_PARTS,
]);

function toConfig(env: Variables) {
  return {
    postgres: {
      host: env.POSTGRES_HOST,
      port: env.POSTGRES_PORT,
      database: env.POSTGRES_DB,
      user: env.POSTGRES_USER,
      password: env.POSTGRES_PASSWORD,
      sslMode: env.POSTGRES_SSLMODE,
      /** PEM files: the CA that signed the server's certificate, and a client certificate with its key. */
      caFile: env.POSTGRES_CA_FILE,
      certFile: env.POSTGRES_CERT_FILE,
      keyFile: env.POSTGRES_KEY_FILE,
      /** The source database as PeerDB's containers reach it, for the source peer. */
      peerHost: env.POSTGRES_PEER_HOST ?? env.POSTGRES_HOST,
      peerPort: env.POSTGRES_PEER_PORT ?? env.POSTGRES_PORT,
    },
    clickhouse: {
      host: env.CLICKHOUSE_HOST,
      /** The HTTP interface's port (HTTPS when secure). */
      port: env.CLICKHOUSE_PORT ?? (env.CLICKHOUSE_SECURE ? 8443 : 8123),
      database: env.CLICKHOUSE_DB,
      user: env.CLICKHOUSE_USER,
      password: env.CLICKHOUSE_PASSWORD,
      /** TLS on both interfaces: EchoDB's HTTPS and PeerDB's native protocol. */
      secure: env.CLICKHOUSE_SECURE,
      caFile: env.CLICKHOUSE_CA_FILE,
      certFile: env.CLICKHOUSE_CERT_FILE,
      keyFile: env.CLICKHOUSE_KEY_FILE,
      /** The name the server's certificate is checked against, when it is not CLICKHOUSE_HOST. */
      tlsServerName: env.CLICKHOUSE_TLS_SERVER_NAME,
      /** ClickHouse as PeerDB's containers reach it, for the destination peer; PeerDB speaks the native protocol. */
      peerHost: env.CLICKHOUSE_PEER_HOST ?? env.CLICKHOUSE_HOST,
      peerPort: env.CLICKHOUSE_PEER_PORT ?? (env.CLICKHOUSE_SECURE ? 9440 : 9000),
      /**
       * `staging`: the S3 staging PeerDB writes this destination's batches to, for the peer. ClickHouse reads each
       * batch from the endpoint itself, so both must reach it. Absent without PEERDB_S3_BUCKET: PeerDB's own
       * settings apply.
       */
      ...(env.PEERDB_S3_BUCKET === undefined ? {} : {
        staging: {
          bucket: env.PEERDB_S3_BUCKET,
          /** Unset: AWS S3 in `region`. */
          endpoint: env.PEERDB_S3_ENDPOINT,
          region: env.PEERDB_S3_REGION,
          // Both set: checked with PEERDB_S3_BUCKET above.
          accessKeyId: env.PEERDB_S3_ACCESS_KEY_ID ?? '',
          secretAccessKey: env.PEERDB_S3_SECRET_ACCESS_KEY ?? '',
        },
      }),
    },
    /** null without REDIS_HOST: leader election then uses a PostgreSQL advisory lock. */
    redis: env.REDIS_HOST === undefined
      ? null
      : { host: env.REDIS_HOST, port: env.REDIS_PORT, password: env.REDIS_PASSWORD, db: env.REDIS_DB },
    peerdb: {
      /** The Flow API, through which EchoDB manages peers and mirrors. */
      apiUrl: env.PEERDB_API_URL,
      requestTimeoutMs: env.PEERDB_REQUEST_TIMEOUT,
      /** A failed mirror's drop runs within the request, for minutes (cancel, then DropFlowWorkflow). */
      dropTimeoutMs: env.PEERDB_DROP_TIMEOUT,
      sourcePeerName: env.SOURCE_PEER_NAME,
      targetPeerName: env.TARGET_PEER_NAME,
    },
    sync: {
      schemas: env.SYNC_SCHEMA,
      /** Globs such as `temp_*` or `audit.*`, as written. */
      excludedTables: env.EXCLUDED_TABLES,
    },
    mirror: {
      strategy: env.MIRROR_STRATEGY,
      /** Unset: the strategy's default (lib/naming.ts). */
      nameTemplate: env.MIRROR_NAME_TEMPLATE,
      destinationTableTemplate: env.DESTINATION_TABLE_TEMPLATE,
      destinationOnDrop: env.DESTINATION_ON_DROP,
      coalesceWindowMs: env.COALESCE_WINDOW,
      /** Tables without a primary key or replica identity: left out (skip), or given REPLICA IDENTITY FULL. */
      missingReplicaIdentity: env.MISSING_REPLICA_IDENTITY,
      /**
       * How long a wait on PeerDB may go without progress (no state change, no rows snapshotted) before it is
       * diagnosed, reported and ended.
       */
      stallTimeoutMs: env.MIRROR_STALL_TIMEOUT,
      /** How long a table waits for its ClickHouse destination while the table holding it is leaving. */
      claimWaitMs: env.DESTINATION_CLAIM_WAIT,
    },
    workerId: env.WORKER_ID,
    leaderElection: { ttlMs: env.LEADER_ELECTION_TTL, intervalMs: env.LEADER_ELECTION_INTERVAL },
    /** NOTIFY wakes the listener; the poll is the safety net for a notification that never came. */
    outbox: { pollIntervalMs: env.OUTBOX_POLL_INTERVAL, batchSize: env.OUTBOX_BATCH_SIZE },
    circuitBreaker: {
      peerdb: {
        failureThreshold: env.PEERDB_FAILURE_THRESHOLD,
        successThreshold: env.PEERDB_SUCCESS_THRESHOLD,
        /** How long the breaker stays open. */
        timeoutMs: env.PEERDB_TIMEOUT,
      },
      postgres: {
        failureThreshold: env.POSTGRES_FAILURE_THRESHOLD,
        successThreshold: env.POSTGRES_SUCCESS_THRESHOLD,
        timeoutMs: env.POSTGRES_TIMEOUT,
      },
    },
    /** `backoffMs` is the first retry's interval; each next one is `backoffCoefficient` times longer. */
    retry: { maxRetries: env.MAX_RETRIES, backoffMs: env.RETRY_DELAY, backoffCoefficient: env.RETRY_BACKOFF },
    /** `maxAttempts` 0 means forever. */
    reconnect: { delayMs: env.RECONNECT_DELAY, maxAttempts: env.MAX_RECONNECT_ATTEMPTS },
    /** `batchSize`: tables counted together, one statement per database (cut earlier when their names are long). */
    verify: { delayMs: env.VERIFY_DELAY, attempts: env.VERIFY_ATTEMPTS, intervalMs: env.VERIFY_INTERVAL, batchSize: env.VERIFY_BATCH_SIZE },
    /**
     * The row diff (`echodb diff`, GET /diff, verify-all under VERIFY_MODE=checksum): rows found different are looked
     * at again `rechecks` times, `settleDelayMs` apart, before they are reported; `examples` differing rows are kept
     * in the result; each statement may run `queryTimeoutMs`.
     */
    diff: {
      mode: env.VERIFY_MODE,
      settleDelayMs: env.DIFF_SETTLE_DELAY,
      rechecks: env.DIFF_RECHECKS,
      examples: env.DIFF_EXAMPLES,
      queryTimeoutMs: env.DIFF_QUERY_TIMEOUT,
    },
    consistencyChecker: {
      intervalMs: env.CONSISTENCY_CHECK_INTERVAL,
      port: env.CONSISTENCY_CHECKER_PORT,
      /** The address it listens on; unset, every interface. */
      host: env.CONSISTENCY_CHECKER_HOST,
      /** Batches of tables verify-all verifies at the same time. */
      concurrency: env.VERIFY_CONCURRENCY,
    },
    /**
     * What `echodb cleanup` and the cleanup schedule delete: rows of echodb.ddl_events (dispatched or skipped),
     * echodb.mirror_operations and echodb.verifications older than `days`, `batchSize` rows per statement; each
     * table's latest verification, each mirror's latest operation and every pending event are kept whatever
     * their age. `intervalMs` null: no schedule.
     */
    retention: { days: env.RETENTION_DAYS, batchSize: env.RETENTION_BATCH_SIZE, intervalMs: env.CLEANUP_INTERVAL },
    /**
     * Replication-slot health (lib/replication-slots.ts): the leader reads EchoDB's slots every `checkIntervalMs`,
     * records since when each is inactive, and logs a warning when one retains more than `walWarnBytes` of WAL or
     * stays inactive longer than `inactiveWarnMs` (0 turns either warning off).
     */
    slots: {
      checkIntervalMs: env.SLOT_CHECK_INTERVAL,
      walWarnBytes: env.SLOT_WAL_WARN_MB * 1024 * 1024,
      inactiveWarnMs: env.SLOT_INACTIVE_WARN_SECONDS,
    },
    api: {
      healthPort: env.HEALTH_PORT,
      /** The address HEALTH_PORT listens on; unset, every interface. */
      healthHost: env.HEALTH_CHECK_HOST,
      token: env.API_TOKEN,
      /** How long /verify and /verify-all wait for the result before they answer 202 with a URL to poll. */
      verifyWaitMs: env.API_VERIFY_WAIT,
    },
    temporal: {
      address: env.TEMPORAL_ADDRESS,
      namespace: env.TEMPORAL_NAMESPACE,
      taskQueue: env.TEMPORAL_TASK_QUEUE,
    },
    logLevel: env.LOG_LEVEL,
    /** Log lines go to this file too (appended), as well as to stdout. */
    logFile: env.LOG_FILE,
  };
}

type DeepReadonly<T> = T extends readonly (infer Item)[]
  ? readonly DeepReadonly<Item>[]
  : T extends object
    ? { readonly [Key in keyof T]: DeepReadonly<T[Key]> }
    : T;

export type Config = DeepReadonly<ReturnType<typeof toConfig>>;

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const envFile = options.envFile ?? (env.ECHODB_ENV_FILE || '.env');
  const merged = { ...withoutEmpty(envFile === false ? {} : readEnvFile(envFile)), ...withoutEmpty(env) };
  const { values, givenAs, problems } = resolveAliases(merged);
  const result = variables.safeParse(values);
  problems.push(
    ...(result.error?.issues ?? []).map((issue) => {
      const name = String(issue.path[0]);
      return `${givenAs[name] ?? name}: ${issue.message}`;
    }),
  );
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return deepFreeze(toConfig(result.data));
}

/**
 * Puts each alias's value under EchoDB's name, and builds TEMPORAL_ADDRESS from TEMPORAL_HOST and TEMPORAL_PORT.
 * `givenAs` maps EchoDB's name to the name the value was given under, so that a problem names what the user wrote.
 */
function resolveAliases(merged: Record<string, string>) {
  const values = { ...merged };
  const givenAs: Record<string, string> = {};
  const problems: string[] = [];
  for (const [alias, name] of Object.entries(VARIABLE_ALIASES)) {
    const aliased = values[alias];
    if (aliased === undefined) continue;
    delete values[alias];
    if (values[name] !== undefined && values[name] !== aliased) {
      problems.push(`${alias}: ${JSON.stringify(aliased)} differs from ${name} (${JSON.stringify(values[name])}); expected one of the two names, which mean the same`);
    }
    values[name] ??= aliased;
    if (values[name] === aliased) givenAs[name] = alias;
  }
  const [host, port] = TEMPORAL_PARTS.map((part) => values[part]);
  for (const part of TEMPORAL_PARTS) delete values[part];
  if ((host !== undefined || port !== undefined) && values.TEMPORAL_ADDRESS === undefined) {
    if (port !== undefined && !/^\s*\d{1,5}\s*$/.test(port)) {
      problems.push(`TEMPORAL_PORT: ${JSON.stringify(port)} is not a port; expected an integer from 1 to 65535`);
    }
    values.TEMPORAL_ADDRESS = `${host?.trim() ?? 'temporal'}:${port?.trim() ?? '7233'}`;
    givenAs.TEMPORAL_ADDRESS = 'TEMPORAL_HOST/TEMPORAL_PORT';
  }
  return { values, givenAs, problems };
}

const secretKey = /password|token|secret/i;

/** A copy for logs, with every password and token that is set shown as "***". */
export function redactedConfig(config: Config): Config {
  const redact = (value: unknown): unknown => {
    if (Array.isArray(value) || value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, secretKey.test(key) && item ? '***' : redact(item)]),
    );
  };
  return deepFreeze(redact(config) as Config);
}

/** A missing file is no error: the environment alone may configure everything. */
function readEnvFile(path: string): Record<string, string> {
  try {
    return parseDotenv(readFileSync(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
}

/** An empty variable counts as unset, so that `NAME=` falls back to the default (or to the file). */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''),
  );
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    Object.values(value).forEach(deepFreeze);
    Object.freeze(value);
  }
  return value;
}
