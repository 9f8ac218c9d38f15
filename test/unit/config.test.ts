import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, ConfigError, loadConfig, MANUAL_VARIABLES_NOT_USED, redactedConfig, type Config } from '../../lib/config.js';

const defaults: Config = {
  postgres: {
    host: 'localhost',
    port: 5432,
    database: 'postgres',
    user: 'postgres',
    password: '',
    sslMode: 'disable',
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    peerHost: 'localhost',
    peerPort: 5432,
  },
  clickhouse: {
    host: 'localhost',
    port: 8123,
    database: 'default',
    user: 'default',
    password: '',
    secure: false,
    caFile: undefined,
    certFile: undefined,
    keyFile: undefined,
    tlsServerName: undefined,
    peerHost: 'localhost',
    peerPort: 9000,
  },
  redis: null,
  peerdb: {
    apiUrl: 'http://flow-api:8113',
    requestTimeoutMs: 30_000,
    dropTimeoutMs: 480_000,
    sourcePeerName: 'postgres_source',
    targetPeerName: 'clickhouse_target',
  },
  sync: { schemas: ['public'], excludedTables: [] },
  mirror: {
    strategy: 'per-schema',
    nameTemplate: undefined,
    destinationTableTemplate: '{table}',
    destinationOnDrop: 'rename',
    coalesceWindowMs: 2_000,
    missingReplicaIdentity: 'skip',
    stallTimeoutMs: 1_800_000,
    claimWaitMs: 120_000,
  },
  workerId: `${hostname()}-${process.pid}`,
  leaderElection: { ttlMs: 30_000, intervalMs: 10_000 },
  outbox: { pollIntervalMs: 5_000, batchSize: 100 },
  circuitBreaker: {
    peerdb: { failureThreshold: 5, successThreshold: 2, timeoutMs: 60_000 },
    postgres: { failureThreshold: 3, successThreshold: 1, timeoutMs: 30_000 },
  },
  retry: { maxRetries: 3, backoffMs: 2_000, backoffCoefficient: 2 },
  reconnect: { delayMs: 5_000, maxAttempts: 10 },
  verify: { delayMs: 5_000, attempts: 3, intervalMs: 10_000, batchSize: 100 },
  consistencyChecker: { intervalMs: 3_600_000, port: 8090, host: undefined, concurrency: 4 },
  diff: { mode: 'count', settleDelayMs: 30_000, rechecks: 3, examples: 20, queryTimeoutMs: 600_000 },
  retention: { days: 7, batchSize: 1000, intervalMs: 86_400_000 },
  slots: { checkIntervalMs: 60_000, walWarnBytes: 5000 * 1024 * 1024, inactiveWarnMs: 900_000 },
  api: { healthPort: 8080, healthHost: undefined, token: undefined, verifyWaitMs: 30_000 },
  temporal: { address: 'temporal:7233', namespace: 'default', taskQueue: 'echodb' },
  logLevel: 'info',
  logFile: undefined,
};

/** PEM-named files for the *_FILE variables, which must name files this process can read. */
const pemDir = mkdtempSync(join(tmpdir(), 'echodb-config-pem-'));
const pem = (name: string) => {
  const file = join(pemDir, name);
  writeFileSync(file, `-----BEGIN ${name}-----\n-----END ${name}-----\n`);
  return file;
};
const pemFiles = {
  pgCa: pem('pg-ca.pem'),
  pgCert: pem('pg-client.pem'),
  pgKey: pem('pg-client.key'),
  chCa: pem('ch-ca.pem'),
  chCert: pem('ch-client.pem'),
  chKey: pem('ch-client.key'),
};
afterAll(() => rmSync(pemDir, { recursive: true, force: true }));

/** Every variable, none at its default. */
const fullEnv = {
  POSTGRES_HOST: 'pg.internal',
  POSTGRES_PORT: '6432',
  POSTGRES_DB: 'shop',
  POSTGRES_USER: 'echodb',
  POSTGRES_PASSWORD: 'pg-secret',
  POSTGRES_SSLMODE: 'verify-full',
  POSTGRES_CA_FILE: pemFiles.pgCa,
  POSTGRES_CERT_FILE: pemFiles.pgCert,
  POSTGRES_KEY_FILE: pemFiles.pgKey,
  POSTGRES_PEER_HOST: 'pg.peer',
  POSTGRES_PEER_PORT: '7432',
  CLICKHOUSE_HOST: 'ch.internal',
  CLICKHOUSE_PORT: '18123',
  CLICKHOUSE_DB: 'analytics',
  CLICKHOUSE_USER: 'loader',
  CLICKHOUSE_PASSWORD: 'ch-secret',
  CLICKHOUSE_SECURE: 'true',
  CLICKHOUSE_CA_FILE: pemFiles.chCa,
  CLICKHOUSE_CERT_FILE: pemFiles.chCert,
  CLICKHOUSE_KEY_FILE: pemFiles.chKey,
  CLICKHOUSE_TLS_SERVER_NAME: 'ch.example.com',
  CLICKHOUSE_PEER_HOST: 'ch.peer',
  CLICKHOUSE_PEER_PORT: '19000',
  REDIS_HOST: 'redis.internal',
  REDIS_PORT: '6380',
  REDIS_PASSWORD: 'redis-secret',
  REDIS_DB: '15',
  PEERDB_API_URL: 'https://peerdb.internal:8113/',
  PEERDB_HOST: 'nexus.internal',
  PEERDB_PORT: '9901',
  PEERDB_USER: 'admin',
  PEERDB_PASSWORD: 'peerdb-secret',
  SOURCE_PEER_NAME: 'shop_pg',
  TARGET_PEER_NAME: 'shop_ch',
  SYNC_SCHEMA: 'public,sales',
  EXCLUDED_TABLES: 'temp_*,audit.*',
  MIRROR_STRATEGY: 'per-table',
  MIRROR_NAME_TEMPLATE: 'shop_{schema}_{table}',
  DESTINATION_TABLE_TEMPLATE: '{schema}_{table}',
  DESTINATION_ON_DROP: 'keep',
  COALESCE_WINDOW: '0.25',
  MISSING_REPLICA_IDENTITY: 'set-full',
  MIRROR_STALL_TIMEOUT: '600',
  DESTINATION_CLAIM_WAIT: '0',
  PEERDB_DROP_TIMEOUT: '900',
  WORKER_ID: 'echodb-7',
  LEADER_ELECTION_TTL: '15',
  LEADER_ELECTION_INTERVAL: '5',
  OUTBOX_POLL_INTERVAL: '2.5',
  OUTBOX_BATCH_SIZE: '250',
  PEERDB_FAILURE_THRESHOLD: '7',
  PEERDB_SUCCESS_THRESHOLD: '3',
  PEERDB_TIMEOUT: '90',
  POSTGRES_FAILURE_THRESHOLD: '4',
  POSTGRES_SUCCESS_THRESHOLD: '2',
  POSTGRES_TIMEOUT: '45',
  PEERDB_REQUEST_TIMEOUT: '12.5',
  MAX_RETRIES: '0',
  RETRY_DELAY: '1.5',
  RETRY_BACKOFF: '3',
  RECONNECT_DELAY: '2',
  MAX_RECONNECT_ATTEMPTS: '0',
  VERIFY_DELAY: '1',
  VERIFY_ATTEMPTS: '6',
  VERIFY_INTERVAL: '20',
  CONSISTENCY_CHECK_INTERVAL: '600',
  CONSISTENCY_CHECKER_PORT: '9090',
  HEALTH_PORT: '9080',
  HEALTH_CHECK_HOST: '127.0.0.1',
  CONSISTENCY_CHECKER_HOST: '0.0.0.0',
  API_TOKEN: 'api-secret',
  API_VERIFY_WAIT: '5',
  VERIFY_CONCURRENCY: '8',
  VERIFY_BATCH_SIZE: '250',
  VERIFY_MODE: 'checksum',
  DIFF_SETTLE_DELAY: '90',
  DIFF_RECHECKS: '0',
  DIFF_EXAMPLES: '5',
  DIFF_QUERY_TIMEOUT: '120',
  RETENTION_DAYS: '30',
  RETENTION_BATCH_SIZE: '500',
  CLEANUP_INTERVAL: '3600',
  SLOT_CHECK_INTERVAL: '30',
  SLOT_WAL_WARN_MB: '1024',
  SLOT_INACTIVE_WARN_SECONDS: '0',
  TEMPORAL_ADDRESS: 'temporal.internal:7233',
  TEMPORAL_NAMESPACE: 'echodb',
  TEMPORAL_TASK_QUEUE: 'echodb-shop',
  LOG_LEVEL: 'debug',
  LOG_FILE: '/var/log/echodb/echodb.log',
};

const secrets = ['pg-secret', 'ch-secret', 'redis-secret', 'peerdb-secret', 'api-secret'];

const badPort = 'POSTGRES_PORT: "abc" is not a port; expected an integer from 1 to 65535';

const load = (env: NodeJS.ProcessEnv) => loadConfig({ env, envFile: false });

function problemsOf(env: NodeJS.ProcessEnv, envFile: string | false = false): string[] {
  try {
    loadConfig({ env, envFile });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function withTempDir<T>(use: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'echodb-config-'));
  try {
    return use(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('loadConfig', () => {
  it('gives every default when nothing is set', () => {
    expect(load({})).toEqual(defaults);
  });

  it('reads every variable of a full environment into the nested config', () => {
    expect(load(fullEnv)).toEqual({
      postgres: {
        host: 'pg.internal',
        port: 6432,
        database: 'shop',
        user: 'echodb',
        password: 'pg-secret',
        sslMode: 'verify-full',
        caFile: pemFiles.pgCa,
        certFile: pemFiles.pgCert,
        keyFile: pemFiles.pgKey,
        peerHost: 'pg.peer',
        peerPort: 7432,
      },
      clickhouse: {
        host: 'ch.internal',
        port: 18123,
        database: 'analytics',
        user: 'loader',
        password: 'ch-secret',
        secure: true,
        caFile: pemFiles.chCa,
        certFile: pemFiles.chCert,
        keyFile: pemFiles.chKey,
        tlsServerName: 'ch.example.com',
        peerHost: 'ch.peer',
        peerPort: 19000,
      },
      redis: { host: 'redis.internal', port: 6380, password: 'redis-secret', db: 15 },
      peerdb: {
        apiUrl: 'https://peerdb.internal:8113',
        requestTimeoutMs: 12_500,
        dropTimeoutMs: 900_000,
        sourcePeerName: 'shop_pg',
        targetPeerName: 'shop_ch',
      },
      sync: { schemas: ['public', 'sales'], excludedTables: ['temp_*', 'audit.*'] },
      mirror: {
        strategy: 'per-table',
        nameTemplate: 'shop_{schema}_{table}',
        destinationTableTemplate: '{schema}_{table}',
        destinationOnDrop: 'keep',
        coalesceWindowMs: 250,
        missingReplicaIdentity: 'set-full',
        stallTimeoutMs: 600_000,
        claimWaitMs: 0,
      },
      workerId: 'echodb-7',
      leaderElection: { ttlMs: 15_000, intervalMs: 5_000 },
      outbox: { pollIntervalMs: 2_500, batchSize: 250 },
      circuitBreaker: {
        peerdb: { failureThreshold: 7, successThreshold: 3, timeoutMs: 90_000 },
        postgres: { failureThreshold: 4, successThreshold: 2, timeoutMs: 45_000 },
      },
      retry: { maxRetries: 0, backoffMs: 1_500, backoffCoefficient: 3 },
      reconnect: { delayMs: 2_000, maxAttempts: 0 },
      verify: { delayMs: 1_000, attempts: 6, intervalMs: 20_000, batchSize: 250 },
      consistencyChecker: { intervalMs: 600_000, port: 9090, host: '0.0.0.0', concurrency: 8 },
      diff: { mode: 'checksum', settleDelayMs: 90_000, rechecks: 0, examples: 5, queryTimeoutMs: 120_000 },
      retention: { days: 30, batchSize: 500, intervalMs: 3_600_000 },
      slots: { checkIntervalMs: 30_000, walWarnBytes: 1024 * 1024 * 1024, inactiveWarnMs: 0 },
      api: { healthPort: 9080, healthHost: '127.0.0.1', token: 'api-secret', verifyWaitMs: 5_000 },
      temporal: { address: 'temporal.internal:7233', namespace: 'echodb', taskQueue: 'echodb-shop' },
      logLevel: 'debug',
      logFile: '/var/log/echodb/echodb.log',
    } satisfies Config);
  });

  it('treats an empty variable as unset', () => {
    const config = load({ POSTGRES_HOST: '', POSTGRES_PORT: '', SYNC_SCHEMA: '', REDIS_HOST: '' });
    expect(config.postgres.host).toBe('localhost');
    expect(config.postgres.port).toBe(5432);
    expect(config.sync.schemas).toEqual(['public']);
    expect(config.redis).toBeNull();
  });

  it('ignores variables it does not know', () => {
    expect(load({ PATH: '/usr/bin', POSTGRES_HOSTNAME: 'typo', HOME: '/root' })).toEqual(defaults);
  });

  it('returns a frozen config', () => {
    const config = load(fullEnv);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.circuitBreaker.peerdb)).toBe(true);
    expect(Object.isFrozen(config.sync.schemas)).toBe(true);
    expect(() => {
      (config.postgres as { host: string }).host = 'elsewhere';
    }).toThrow(TypeError);
  });

  it('exposes durations given in seconds as milliseconds, decimals included', () => {
    const config = load({ LEADER_ELECTION_TTL: '1.5', LEADER_ELECTION_INTERVAL: '.5', COALESCE_WINDOW: '0' });
    expect(config.leaderElection).toEqual({ ttlMs: 1_500, intervalMs: 500 });
    expect(config.mirror.coalesceWindowMs).toBe(0);
  });

  it('uses no Redis when REDIS_HOST is unset, whatever the other REDIS_ variables say', () => {
    expect(load({ REDIS_PORT: '6380', REDIS_PASSWORD: 'secret', REDIS_DB: '2' }).redis).toBeNull();
  });

  it('configures Redis when REDIS_HOST is set', () => {
    expect(load({ REDIS_HOST: 'redis' }).redis).toEqual({ host: 'redis', port: 6379, password: undefined, db: 0 });
  });

  it('splits lists on commas, trimming items and dropping empty ones', () => {
    const config = load({ SYNC_SCHEMA: ' public , sales,,', EXCLUDED_TABLES: 'temp_*, audit.* ,, ,*_old' });
    expect(config.sync.schemas).toEqual(['public', 'sales']);
    expect(config.sync.excludedTables).toEqual(['temp_*', 'audit.*', '*_old']);
  });

  it('accepts enum values and log levels in any case', () => {
    const config = load({ LOG_LEVEL: 'WARN', MIRROR_STRATEGY: 'Per-Table', POSTGRES_SSLMODE: 'Require' });
    expect(config.logLevel).toBe('warn');
    expect(config.mirror.strategy).toBe('per-table');
    expect(config.postgres.sslMode).toBe('require');
  });

  it('turns the cleanup schedule off with CLEANUP_INTERVAL=0 or off, in any case', () => {
    for (const off of ['0', 'off', 'OFF', ' Off ', '0.0']) expect(load({ CLEANUP_INTERVAL: off }).retention.intervalMs).toBeNull();
    expect(load({ CLEANUP_INTERVAL: '0.5' }).retention.intervalMs).toBe(500);
  });

  it('stops start-up on a bad retention setting, naming the variable', () => {
    expect(problemsOf({ RETENTION_DAYS: '0', RETENTION_BATCH_SIZE: '100001', CLEANUP_INTERVAL: 'daily' })).toEqual([
      'RETENTION_DAYS: "0" is not a number of days; expected an integer from 1 to 36500',
      'RETENTION_BATCH_SIZE: "100001" is not a batch size; expected an integer from 1 to 100000',
      'CLEANUP_INTERVAL: "daily" is not a period; expected a number of seconds above 0, such as 86400, or 0 or off for never',
    ]);
    expect(problemsOf({ RETENTION_DAYS: '7.5' })).toEqual(['RETENTION_DAYS: "7.5" is not a number of days; expected an integer from 1 to 36500']);
    expect(problemsOf({ CLEANUP_INTERVAL: '-1' })[0]).toMatch(/^CLEANUP_INTERVAL: "-1" is not a period/);
  });

  it('keeps the PeerDB API URL without its trailing slash', () => {
    expect(load({ PEERDB_API_URL: 'http://localhost:8113/' }).peerdb.apiUrl).toBe('http://localhost:8113');
  });

  it('gives PeerDB the source database where EchoDB reaches it unless POSTGRES_PEER_* says otherwise', () => {
    const config = load({ POSTGRES_HOST: 'localhost', POSTGRES_PORT: '15432', CLICKHOUSE_HOST: 'ch.local' });
    expect(config.postgres).toMatchObject({ peerHost: 'localhost', peerPort: 15432 });
    expect(config.clickhouse).toMatchObject({ peerHost: 'ch.local', peerPort: 9000 });
    const split = load({ POSTGRES_HOST: 'localhost', POSTGRES_PEER_HOST: 'postgres', CLICKHOUSE_PEER_HOST: 'ch' });
    expect(split.postgres).toMatchObject({ host: 'localhost', peerHost: 'postgres', peerPort: 5432 });
    expect(split.clickhouse).toMatchObject({ host: 'localhost', peerHost: 'ch' });
  });

  it('leaves the mirror name template unset, for the strategy to choose, unless MIRROR_NAME_TEMPLATE is set', () => {
    expect(load({ MIRROR_STRATEGY: 'per-table' }).mirror.nameTemplate).toBeUndefined();
    expect(load({ MIRROR_NAME_TEMPLATE: 'cdc_{schema}' }).mirror.nameTemplate).toBe('cdc_{schema}');
  });
});

describe('a bad value', () => {
  it.each([
    ['names the variable and the accepted range for a bad port', 'POSTGRES_PORT', 'abc',
      'POSTGRES_PORT: "abc" is not a port; expected an integer from 1 to 65535'],
    ['rejects port 0', 'HEALTH_PORT', '0', 'HEALTH_PORT: "0" is not a port; expected an integer from 1 to 65535'],
    ['rejects a port above 65535', 'CLICKHOUSE_PORT', '65536',
      'CLICKHOUSE_PORT: "65536" is not a port; expected an integer from 1 to 65535'],
    ['checks the native port PeerDB uses', 'CLICKHOUSE_PEER_PORT', 'native',
      'CLICKHOUSE_PEER_PORT: "native" is not a port; expected an integer from 1 to 65535'],
    ['checks an optional port when it is set', 'POSTGRES_PEER_PORT', '0',
      'POSTGRES_PEER_PORT: "0" is not a port; expected an integer from 1 to 65535'],
    ['asks for a positive integer', 'PEERDB_FAILURE_THRESHOLD', '0',
      'PEERDB_FAILURE_THRESHOLD: "0" is not a positive integer; expected an integer of 1 or more'],
    ['asks for a whole number of retries', 'MAX_RETRIES', '1.5',
      'MAX_RETRIES: "1.5" is not a non-negative integer; expected an integer of 0 or more'],
    ['rejects a negative count', 'MAX_RECONNECT_ATTEMPTS', '-1',
      'MAX_RECONNECT_ATTEMPTS: "-1" is not a non-negative integer; expected an integer of 0 or more'],
    ['gives the range of Redis databases', 'REDIS_DB', '16',
      'REDIS_DB: "16" is not a Redis database number; expected an integer from 0 to 15'],
    ['names the verification modes', 'VERIFY_MODE', 'rows',
      'VERIFY_MODE: "rows" is not a verification mode; expected one of count, checksum'],
    ['bounds the re-checks', 'DIFF_RECHECKS', '21',
      'DIFF_RECHECKS: "21" is not a number of re-checks; expected an integer from 0 to 20'],
    ['needs an example row', 'DIFF_EXAMPLES', '0',
      'DIFF_EXAMPLES: "0" is not a number of example rows; expected an integer from 1 to 1000'],
    ['bounds the verify batch', 'VERIFY_BATCH_SIZE', '1001',
      'VERIFY_BATCH_SIZE: "1001" is not a batch size; expected an integer from 1 to 1000'],
    ['rejects an empty verify batch', 'VERIFY_BATCH_SIZE', '0',
      'VERIFY_BATCH_SIZE: "0" is not a batch size; expected an integer from 1 to 1000'],
    ['asks for seconds as a number', 'VERIFY_INTERVAL', '10s',
      'VERIFY_INTERVAL: "10s" is not a duration; expected a number of seconds above 0, such as 30 or 0.5'],
    ['rejects a zero lease', 'LEADER_ELECTION_TTL', '0',
      'LEADER_ELECTION_TTL: "0" is not a duration; expected a number of seconds above 0, such as 30 or 0.5'],
    ['rejects negative seconds', 'COALESCE_WINDOW', '-1',
      'COALESCE_WINDOW: "-1" is not a duration; expected a number of seconds of 0 or more, such as 30 or 0.5'],
    ['lists the accepted SSL modes', 'POSTGRES_SSLMODE', 'verify-ca',
      'POSTGRES_SSLMODE: "verify-ca" is not an SSL mode; expected one of disable, require, verify-full'],
    ['lists the mirror strategies', 'MIRROR_STRATEGY', 'per-database',
      'MIRROR_STRATEGY: "per-database" is not a mirror strategy; expected one of per-schema, per-table'],
    ['lists what DROP TABLE may do', 'DESTINATION_ON_DROP', 'truncate',
      'DESTINATION_ON_DROP: "truncate" is not a drop policy; expected one of keep, rename, drop'],
    ['lists the log levels', 'LOG_LEVEL', 'verbose',
      'LOG_LEVEL: "verbose" is not a log level; expected one of trace, debug, info, warn, error, fatal'],
    ['asks for at least one schema', 'SYNC_SCHEMA', ' , ',
      'SYNC_SCHEMA: " , " is not a list of names; expected a comma-separated list with at least one name, '
        + 'such as public,sales'],
    ['quotes the PeerDB name rule for a peer name with capitals', 'SOURCE_PEER_NAME', 'Postgres-Source',
      'SOURCE_PEER_NAME: "Postgres-Source" is not a PeerDB name; expected lowercase letters, digits and '
        + 'underscores, not starting with a digit (PeerDB requires ^[a-z_][a-z0-9_]*$)'],
    ['rejects a peer name that starts with a digit', 'TARGET_PEER_NAME', '1target',
      'TARGET_PEER_NAME: "1target" is not a PeerDB name; expected lowercase letters, digits and '
        + 'underscores, not starting with a digit (PeerDB requires ^[a-z_][a-z0-9_]*$)'],
    ['asks for an http(s) URL', 'PEERDB_API_URL', 'ftp://flow-api:8113',
      'PEERDB_API_URL: "ftp://flow-api:8113" is not an http(s) URL; '
        + 'expected an address such as http://flow-api:8113'],
    ['rejects a URL without a scheme', 'PEERDB_API_URL', 'flow-api',
      'PEERDB_API_URL: "flow-api" is not an http(s) URL; expected an address such as http://flow-api:8113'],
    ['asks for a placeholder in the mirror name template', 'MIRROR_NAME_TEMPLATE', 'echodb',
      'MIRROR_NAME_TEMPLATE: "echodb" is not a template with {schema} or {table}; expected text containing '
        + '{schema} or {table}, and no other placeholder than {schema} and {table}'],
    ['asks for {table} in the destination table template', 'DESTINATION_TABLE_TEMPLATE', '{schema}',
      'DESTINATION_TABLE_TEMPLATE: "{schema}" is not a template with {table}; expected text containing {table}, '
        + 'and no other placeholder than {schema} and {table}'],
    ['rejects an unknown placeholder in a template', 'DESTINATION_TABLE_TEMPLATE', '{table}_{tabel}',
      'DESTINATION_TABLE_TEMPLATE: "{table}_{tabel}" is not a template with {table}; expected text containing '
        + '{table}, and no other placeholder than {schema} and {table}'],
  ])('%s', (_behaviour, variable, value, problem) => {
    expect(problemsOf({ [variable]: value })).toEqual([problem]);
  });

  it('is reported with every other bad value, one line each', () => {
    let thrown: unknown;
    try {
      load({ POSTGRES_PORT: 'abc', LOG_LEVEL: 'loud', VERIFY_ATTEMPTS: '0', POSTGRES_HOST: 'fine' });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const error = thrown as ConfigError;
    expect(error.problems).toEqual([
      'POSTGRES_PORT: "abc" is not a port; expected an integer from 1 to 65535',
      'VERIFY_ATTEMPTS: "0" is not a positive integer; expected an integer of 1 or more',
      'LOG_LEVEL: "loud" is not a log level; expected one of trace, debug, info, warn, error, fatal',
    ]);
    expect(error.message).toBe(`invalid configuration:\n${error.problems.map((line) => `  ${line}`).join('\n')}`);
  });
});

describe('the leader election timing', () => {
  const intervalProblem = (interval: number, ttl: number) =>
    `LEADER_ELECTION_INTERVAL: ${interval} seconds is not less than LEADER_ELECTION_TTL (${ttl} seconds); `
    + 'expected the leader to renew its lease before the lease runs out';

  it('rejects a renewal interval equal to the TTL, on LEADER_ELECTION_INTERVAL', () => {
    expect(problemsOf({ LEADER_ELECTION_TTL: '20', LEADER_ELECTION_INTERVAL: '20' }))
      .toEqual([intervalProblem(20, 20)]);
  });

  it('compares with the default when only one of the two is set', () => {
    expect(problemsOf({ LEADER_ELECTION_TTL: '5' })).toEqual([intervalProblem(10, 5)]);
    expect(problemsOf({ LEADER_ELECTION_INTERVAL: '45' })).toEqual([intervalProblem(45, 30)]);
  });

  it('is reported together with the other problems', () => {
    expect(problemsOf({ POSTGRES_PORT: 'abc', LEADER_ELECTION_INTERVAL: '0.5', LEADER_ELECTION_TTL: '0.5' }))
      .toEqual([badPort, intervalProblem(0.5, 0.5)]);
  });

  it('is not compared when the TTL itself is bad', () => {
    expect(problemsOf({ LEADER_ELECTION_TTL: 'soon', LEADER_ELECTION_INTERVAL: '50' })).toEqual([
      'LEADER_ELECTION_TTL: "soon" is not a duration; expected a number of seconds above 0, such as 30 or 0.5',
    ]);
  });
});

describe('the .env file', () => {
  it('is read from the path given', () => {
    withTempDir((dir) => {
      const file = join(dir, 'echodb.env');
      writeFileSync(file, '# a comment\nPOSTGRES_HOST=db-from-file\nSYNC_SCHEMA="public, sales"\n');
      const config = loadConfig({ env: {}, envFile: file });
      expect(config.postgres.host).toBe('db-from-file');
      expect(config.sync.schemas).toEqual(['public', 'sales']);
    });
  });

  it('is overridden by the real environment', () => {
    withTempDir((dir) => {
      const file = join(dir, '.env');
      writeFileSync(file, 'POSTGRES_HOST=db-from-file\nPOSTGRES_PORT=6000\n');
      const config = loadConfig({ env: { POSTGRES_HOST: 'db-from-env' }, envFile: file });
      expect(config.postgres.host).toBe('db-from-env');
      expect(config.postgres.port).toBe(6000);
    });
  });

  it('fills a variable that the real environment leaves empty', () => {
    withTempDir((dir) => {
      const file = join(dir, '.env');
      writeFileSync(file, 'POSTGRES_HOST=db-from-file\n');
      expect(loadConfig({ env: { POSTGRES_HOST: '' }, envFile: file }).postgres.host).toBe('db-from-file');
    });
  });

  it('is found through ECHODB_ENV_FILE', () => {
    withTempDir((dir) => {
      const file = join(dir, 'custom.env');
      writeFileSync(file, 'TEMPORAL_TASK_QUEUE=from-custom-file\n');
      const config = loadConfig({ env: { ECHODB_ENV_FILE: file } });
      expect(config.temporal.taskQueue).toBe('from-custom-file');
    });
  });

  it('is .env in the current directory by default', () => {
    withTempDir((dir) => {
      writeFileSync(join(dir, '.env'), 'CLICKHOUSE_DB=from-cwd\n');
      const previous = process.cwd();
      process.chdir(dir);
      try {
        expect(loadConfig({ env: {} }).clickhouse.database).toBe('from-cwd');
      } finally {
        process.chdir(previous);
      }
    });
  });

  it('may be missing', () => {
    withTempDir((dir) => {
      expect(loadConfig({ env: {}, envFile: join(dir, 'absent.env') })).toEqual(defaults);
    });
  });

  it('is not read when envFile is false, even with ECHODB_ENV_FILE set', () => {
    withTempDir((dir) => {
      const file = join(dir, '.env');
      writeFileSync(file, 'POSTGRES_HOST=db-from-file\n');
      expect(loadConfig({ env: { ECHODB_ENV_FILE: file }, envFile: false }).postgres.host).toBe('localhost');
    });
  });

  it('has its bad values reported like those of the environment', () => {
    withTempDir((dir) => {
      const file = join(dir, '.env');
      writeFileSync(file, 'POSTGRES_PORT=abc\n');
      expect(problemsOf({}, file)).toEqual([badPort]);
    });
  });
});

describe("the original manual's variable names", () => {
  it("reads a .env written with the manual's own names (CLICKHOUSE_DATABASE, CLICKHOUSE_NATIVE_PORT, HEALTH_CHECK_PORT, TEMPORAL_HOST/PORT, RETRY_DELAY/BACKOFF)", () => {
    withTempDir((dir) => {
      const file = join(dir, '.env');
      // Lines as the original .env.example writes them, its inline comments included.
      writeFileSync(file, [
        'CLICKHOUSE_HOST=clickhouse',
        'CLICKHOUSE_PORT=8123',
        'CLICKHOUSE_NATIVE_PORT=9000',
        'CLICKHOUSE_DATABASE=echodb',
        'TEMPORAL_HOST=temporal',
        'TEMPORAL_PORT=7233',
        'RETRY_DELAY=5',
        'RETRY_BACKOFF=2.0',
        'LOG_LEVEL=INFO',
        'HEALTH_CHECK_PORT=8080',
        'HEALTH_CHECK_HOST=0.0.0.0',
        'CONSISTENCY_CHECK_INTERVAL=900  # 15 minutes',
        'CONSISTENCY_CHECKER_HOST=0.0.0.0',
        '',
      ].join('\n'));
      const config = loadConfig({ env: {}, envFile: file });
      expect(config.clickhouse).toMatchObject({ database: 'echodb', port: 8123, peerPort: 9000 });
      expect(config.temporal.address).toBe('temporal:7233');
      expect(config.retry).toMatchObject({ backoffMs: 5_000, backoffCoefficient: 2 });
      expect(config.logLevel).toBe('info');
      expect(config.api).toMatchObject({ healthPort: 8080, healthHost: '0.0.0.0' });
      expect(config.consistencyChecker).toMatchObject({ intervalMs: 900_000, host: '0.0.0.0' });
    });
  });

  it("accepts the manual's PeerDB SQL interface and unused checker settings whatever their value, and reads nothing from them", () => {
    const manual = {
      PEERDB_HOST: 'peerdb',
      PEERDB_PORT: 'not-a-port',
      PEERDB_USER: 'echodb',
      PEERDB_PASSWORD: 'password',
      CONSISTENCY_SAMPLE_SIZE: '100',
      CONSISTENCY_MAX_LAG: '300  # 5 minutes',
    };
    expect(Object.keys(manual).sort()).toEqual([...MANUAL_VARIABLES_NOT_USED].sort());
    expect(load(manual)).toEqual(defaults);
    // Not PEERDB_API_URL's default: the Flow API is another service (flow-api:8113) than the SQL interface.
    expect(load({ PEERDB_HOST: 'nexus.internal', PEERDB_PORT: '9900' }).peerdb.apiUrl).toBe('http://flow-api:8113');
    expect(CONFIG_VARIABLES.filter((name) => MANUAL_VARIABLES_NOT_USED.includes(name))).toEqual([]);
  });

  it("takes EchoDB's name when both spellings agree, and refuses two different values", () => {
    expect(load({ CLICKHOUSE_DB: 'a', CLICKHOUSE_DATABASE: 'a' }).clickhouse.database).toBe('a');
    expect(problemsOf({ CLICKHOUSE_DB: 'a', CLICKHOUSE_DATABASE: 'b' })).toEqual([
      'CLICKHOUSE_DATABASE: "b" differs from CLICKHOUSE_DB ("a"); expected one of the two names, which mean the same',
    ]);
  });

  it('names the variable as the user wrote it in a problem', () => {
    expect(problemsOf({ CLICKHOUSE_NATIVE_PORT: 'x' })).toEqual([
      'CLICKHOUSE_NATIVE_PORT: "x" is not a port; expected an integer from 1 to 65535',
    ]);
    expect(problemsOf({ TEMPORAL_HOST: 'temporal', TEMPORAL_PORT: 'x' })[0]).toMatch(/^TEMPORAL_PORT: "x" is not a port/);
  });

  it('lets TEMPORAL_ADDRESS win over TEMPORAL_HOST and TEMPORAL_PORT, and fills in the part that is missing', () => {
    expect(load({ TEMPORAL_ADDRESS: 'a:1', TEMPORAL_HOST: 'b' }).temporal.address).toBe('a:1');
    expect(load({ TEMPORAL_HOST: 'temporal.internal' }).temporal.address).toBe('temporal.internal:7233');
    expect(load({ TEMPORAL_PORT: '7234' }).temporal.address).toBe('temporal:7234');
  });

  it('asks for a backoff multiplier of at least 1', () => {
    expect(problemsOf({ RETRY_BACKOFF: '0.5' })).toEqual([
      'RETRY_BACKOFF: "0.5" is not a backoff multiplier; expected a number of 1 or more, such as 2 or 1.5',
    ]);
  });
});

describe('TLS settings', () => {
  it('moves the default ports to the TLS ones (8443 HTTPS, 9440 native) when CLICKHOUSE_SECURE is true', () => {
    expect(load({ CLICKHOUSE_SECURE: 'true' }).clickhouse).toMatchObject({ secure: true, port: 8443, peerPort: 9440 });
    expect(load({ CLICKHOUSE_SECURE: 'yes', CLICKHOUSE_PORT: '443' }).clickhouse.port).toBe(443);
  });

  it('refuses a file it cannot read, naming the variable', () => {
    expect(problemsOf({ CLICKHOUSE_SECURE: 'true', CLICKHOUSE_CA_FILE: '/nonexistent/ca.pem' })).toEqual([
      'CLICKHOUSE_CA_FILE: "/nonexistent/ca.pem" is not a readable file; expected the path of a PEM file that this process can read',
    ]);
  });

  it('asks for a client certificate and its key together', () => {
    expect(problemsOf({ POSTGRES_SSLMODE: 'verify-full', POSTGRES_CERT_FILE: pemFiles.pgCert })).toEqual([
      'POSTGRES_KEY_FILE: is unset while POSTGRES_CERT_FILE is set; expected both (a client certificate and its private key) or neither',
    ]);
  });

  it('refuses TLS files that would be ignored because TLS is off', () => {
    expect(problemsOf({ CLICKHOUSE_CA_FILE: pemFiles.chCa })).toEqual([
      'CLICKHOUSE_CA_FILE: is set but CLICKHOUSE_SECURE is not true; expected CLICKHOUSE_SECURE=true, or no TLS settings',
    ]);
    expect(problemsOf({ POSTGRES_CA_FILE: pemFiles.pgCa })).toEqual([
      'POSTGRES_CA_FILE: is set but POSTGRES_SSLMODE is disable; expected POSTGRES_SSLMODE=require or verify-full, or no TLS files',
    ]);
  });

  it('asks for true or false', () => {
    expect(problemsOf({ CLICKHOUSE_SECURE: 'maybe' })).toEqual([
      'CLICKHOUSE_SECURE: "maybe" is not a yes-or-no value; expected true or false',
    ]);
  });
});

describe('.env.example', () => {
  const examplePath = new URL('../../.env.example', import.meta.url);

  it('sets every variable to its default', () => {
    expect(loadConfig({ env: {}, envFile: examplePath.pathname })).toEqual(defaults);
  });

  it("documents every variable, the original manual's names included", () => {
    const example = readFileSync(examplePath, 'utf8');
    const undocumented = [...new Set([...Object.keys(fullEnv), ...CONFIG_VARIABLES, ...MANUAL_VARIABLES_NOT_USED])].filter(
      (name) => !new RegExp(`^(# )?${name}=`, 'm').test(example),
    );
    expect(undocumented).toEqual([]);
  });
});

describe('redactedConfig', () => {
  it('hides every password and token', () => {
    const redacted = redactedConfig(load(fullEnv));
    expect(redacted.postgres.password).toBe('***');
    expect(redacted.clickhouse.password).toBe('***');
    expect(redacted.redis?.password).toBe('***');
    expect(redacted.api.token).toBe('***');
    const logged = JSON.stringify(redacted);
    expect(secrets.filter((secret) => logged.includes(secret))).toEqual([]);
  });

  it('keeps everything else as it is', () => {
    const config = load(fullEnv);
    const redacted = redactedConfig(config);
    expect(redacted.postgres.host).toBe('pg.internal');
    expect(redacted.sync.excludedTables).toEqual(['temp_*', 'audit.*']);
    expect(redacted.leaderElection).toEqual(config.leaderElection);
    expect(config.postgres.password).toBe('pg-secret');
  });

  it('shows unset secrets as unset, so that a log tells a missing password from a wrong one', () => {
    const redacted = redactedConfig(load({ REDIS_HOST: 'redis' }));
    expect(redacted.clickhouse.password).toBe('');
    expect(redacted.redis?.password).toBeUndefined();
    expect(redacted.api.token).toBeUndefined();
  });
});
