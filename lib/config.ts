/**
 * EchoDB's configuration: environment variables, with a `.env` file under them, validated once at start-up and
 * then passed down as one typed, frozen object. Nothing else in EchoDB reads the environment.
 * `.env.example` documents every variable.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';

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

function integer<Fallback extends number | undefined>(
  fallback: Fallback,
  notA: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
) {
  const expected =
    max === Number.MAX_SAFE_INTEGER ? `an integer of ${min} or more` : `an integer from ${min} to ${max}`;
  const convert = (raw: string) => {
    const value = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    return value >= min && value <= max ? value : undefined;
  };
  return parsed<number | Fallback>(fallback, convert, notA, expected);
}

const text = (fallback: string) => z.string().default(fallback);
const optionalText = () => z.string().optional();
const port = (fallback: number) => integer(fallback, 'a port', 1, 65535);
/** Unset means the config takes another variable's value. */
const optionalPort = () => integer(undefined, 'a port', 1, 65535);
const positiveInt = (fallback: number) => integer(fallback, 'a positive integer', 1);
const nonNegativeInt = (fallback: number) => integer(fallback, 'a non-negative integer', 0);

/** Seconds in the environment (decimals allowed), milliseconds in the config. */
function seconds(fallback: number, { allowZero = true } = {}) {
  const toMs = (value: number) => Math.round(value * 1000);
  const convert = (raw: string) => {
    const ms = /^\s*(\d+(\.\d*)?|\.\d+)\s*$/.test(raw) ? toMs(Number(raw)) : undefined;
    return ms === undefined || (ms === 0 && !allowZero) ? undefined : ms;
  };
  const expected = allowZero ? 'a number of seconds of 0 or more' : 'a number of seconds above 0';
  return parsed(toMs(fallback), convert, 'a duration', `${expected}, such as 30 or 0.5`);
}
/** A period or timeout for which 0 makes no sense. */
const positiveSeconds = (fallback: number) => seconds(fallback, { allowZero: false });

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
    POSTGRES_PEER_HOST: optionalText(),
    POSTGRES_PEER_PORT: optionalPort(),

    CLICKHOUSE_HOST: text('localhost'),
    CLICKHOUSE_PORT: port(8123),
    CLICKHOUSE_DB: text('default'),
    CLICKHOUSE_USER: text('default'),
    CLICKHOUSE_PASSWORD: text(''),
    CLICKHOUSE_PEER_HOST: optionalText(),
    CLICKHOUSE_PEER_PORT: port(9000),

    REDIS_HOST: optionalText(),
    REDIS_PORT: port(6379),
    REDIS_PASSWORD: optionalText(),
    REDIS_DB: integer(0, 'a Redis database number', 0, 15),

    PEERDB_API_URL: httpUrl('http://flow-api:8113'),
    PEERDB_REQUEST_TIMEOUT: positiveSeconds(30),
    PEERDB_DROP_TIMEOUT: positiveSeconds(480),
    PEERDB_HOST: text('peerdb'),
    PEERDB_PORT: port(9900),
    PEERDB_USER: text('peerdb'),
    PEERDB_PASSWORD: text('peerdb'),
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
    RETRY_BACKOFF: seconds(2),
    RECONNECT_DELAY: positiveSeconds(5),
    MAX_RECONNECT_ATTEMPTS: nonNegativeInt(10),

    VERIFY_DELAY: seconds(5),
    VERIFY_ATTEMPTS: positiveInt(3),
    VERIFY_INTERVAL: positiveSeconds(10),
    CONSISTENCY_CHECK_INTERVAL: positiveSeconds(3600),
    CONSISTENCY_CHECKER_PORT: port(8090),
    VERIFY_CONCURRENCY: integer(4, 'a concurrency', 1, 100),

    HEALTH_PORT: port(8080),
    API_TOKEN: optionalText(),
    API_VERIFY_WAIT: seconds(30),

    TEMPORAL_ADDRESS: text('temporal:7233'),
    TEMPORAL_NAMESPACE: text('default'),
    TEMPORAL_TASK_QUEUE: text('echodb'),

    LOG_LEVEL: oneOf(logLevels, 'info', 'a log level'),
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

/** The names of every environment variable EchoDB reads (docker-compose.yml passes each one on). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(variables.shape));

function toConfig(env: Variables) {
  return {
    postgres: {
      host: env.POSTGRES_HOST,
      port: env.POSTGRES_PORT,
      database: env.POSTGRES_DB,
      user: env.POSTGRES_USER,
      password: env.POSTGRES_PASSWORD,
      sslMode: env.POSTGRES_SSLMODE,
      /** The source database as PeerDB's containers reach it, for the source peer. */
      peerHost: env.POSTGRES_PEER_HOST ?? env.POSTGRES_HOST,
      peerPort: env.POSTGRES_PEER_PORT ?? env.POSTGRES_PORT,
    },
    clickhouse: {
      host: env.CLICKHOUSE_HOST,
      /** The HTTP interface's port. */
      port: env.CLICKHOUSE_PORT,
      database: env.CLICKHOUSE_DB,
      user: env.CLICKHOUSE_USER,
      password: env.CLICKHOUSE_PASSWORD,
      /** ClickHouse as PeerDB's containers reach it, for the destination peer; PeerDB speaks the native protocol. */
      peerHost: env.CLICKHOUSE_PEER_HOST ?? env.CLICKHOUSE_HOST,
      peerPort: env.CLICKHOUSE_PEER_PORT,
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
      /** The SQL interface of the original manual, kept for compatibility. */
      nexus: { host: env.PEERDB_HOST, port: env.PEERDB_PORT, user: env.PEERDB_USER, password: env.PEERDB_PASSWORD },
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
    /** `backoffMs` is the first retry's interval. */
    retry: { maxRetries: env.MAX_RETRIES, backoffMs: env.RETRY_BACKOFF },
    /** `maxAttempts` 0 means forever. */
    reconnect: { delayMs: env.RECONNECT_DELAY, maxAttempts: env.MAX_RECONNECT_ATTEMPTS },
    verify: { delayMs: env.VERIFY_DELAY, attempts: env.VERIFY_ATTEMPTS, intervalMs: env.VERIFY_INTERVAL },
    consistencyChecker: {
      intervalMs: env.CONSISTENCY_CHECK_INTERVAL,
      port: env.CONSISTENCY_CHECKER_PORT,
      /** Tables verify-all counts at the same time. */
      concurrency: env.VERIFY_CONCURRENCY,
    },
    api: {
      healthPort: env.HEALTH_PORT,
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
  const result = variables.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${String(issue.path[0])}: ${issue.message}`));
  }
  return deepFreeze(toConfig(result.data));
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
