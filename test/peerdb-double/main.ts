/**
 * The PeerDB Flow API test double as a server of its own, for running the test suite against a Flow API the tests
 * did not start (ECHODB_TEST_PEERDB_URL):
 *
 *   npx tsx test/peerdb-double/main.ts --clickhouse http://default:secret@127.0.0.1:8123 [--port 8113]
 *     [--time-scale 0.01] [--transition-ms 30] [--active-slots]
 *
 * Prints `peerdb double listening on <url>` once it answers; stops on SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { startPeerDbDouble } from './index.js';

const { values } = parseArgs({
  options: {
    clickhouse: { type: 'string' },
    port: { type: 'string', default: '0' },
    'time-scale': { type: 'string', default: '1' },
    'transition-ms': { type: 'string', default: '50' },
    'active-slots': { type: 'boolean', default: false },
  },
});

if (!values.clickhouse) {
  console.error('usage: main.ts --clickhouse http://user:password@host:port [--port N] [--time-scale X] [--transition-ms N] [--active-slots]');
  process.exit(2);
}
const url = new URL(values.clickhouse);
const double = await startPeerDbDouble({
  clickhouse: {
    url: `${url.protocol}//${url.host}`,
    user: decodeURIComponent(url.username) || 'default',
    password: decodeURIComponent(url.password),
  },
  port: Number(values.port),
  timeScale: Number(values['time-scale']),
  transitionMs: Number(values['transition-ms']),
  activeSlots: values['active-slots'],
});
console.log(`peerdb double listening on ${double.url}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void double.close().then(() => process.exit(0));
  });
}
