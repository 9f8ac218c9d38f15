/**
 * Runs the mirror lifecycle and fault tests against a Flow API they did not start, as they would run against a
 * real PeerDB (ECHODB_TEST_PEERDB_URL): here the PeerDB test double as a server of its own
 * (test/peerdb-double/main.ts), beside throwaway servers that both share.
 *
 *   npm run test:separate-double [-- vitest arguments]
 *
 * The cases that turn the double's knobs are left out, and named in the output.
 */
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { startLocalServers } from '../test/servers/index.js';

const FILES = ['test/mirror-lifecycle.test.ts', 'test/fault-matrix.test.ts', 'test/fault-matrix-servers.test.ts', 'test/fault-matrix-peerdb.test.ts'];

const servers = await startLocalServers();
const { postgres, redis, clickhouse, temporal } = servers.settings;
const clickhouseUrl = new URL(clickhouse.url);
clickhouseUrl.username = encodeURIComponent(clickhouse.user);
clickhouseUrl.password = encodeURIComponent(clickhouse.password);

const double = spawn(
  'npx',
  ['tsx', 'test/peerdb-double/main.ts', '--clickhouse', clickhouseUrl.toString(), '--time-scale', '0.01', '--transition-ms', '30'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const peerdbUrl = await new Promise<string>((resolve, reject) => {
  double.once('exit', (code) => reject(new Error(`the PeerDB double exited with ${code}`)));
  readline.createInterface({ input: double.stdout }).on('line', (line) => {
    const match = /listening on (\S+)/.exec(line);
    if (match) resolve(match[1]!);
  });
});
console.log(`separate PeerDB double at ${peerdbUrl}`);

const env = {
  ...process.env,
  ECHODB_TEST_POSTGRES_URL: `postgres://${encodeURIComponent(postgres.user)}:${encodeURIComponent(postgres.password)}@${postgres.host}:${postgres.port}/${postgres.database}`,
  ECHODB_TEST_REDIS_URL: `redis://:${encodeURIComponent(redis.password)}@${redis.host}:${redis.port}`,
  ECHODB_TEST_CLICKHOUSE_URL: clickhouseUrl.toString(),
  ECHODB_TEST_CLICKHOUSE_NATIVE_PORT: String(clickhouse.nativePort),
  ECHODB_TEST_TEMPORAL_ADDRESS: temporal.address,
  ECHODB_TEST_TEMPORAL_NAMESPACE: temporal.namespace,
  ECHODB_TEST_PEERDB_URL: peerdbUrl,
};
const vitest = spawn('npx', ['vitest', 'run', '--project', 'integration*', ...FILES, ...process.argv.slice(2)], { stdio: 'inherit', env });
const code = await new Promise<number>((resolve) => vitest.once('exit', (exit) => resolve(exit ?? 1)));

double.kill('SIGTERM');
await servers.stop();
process.exit(code);
