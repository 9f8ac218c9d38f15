// Starts throwaway servers in a child process and reports where they live, for the harness's own tests.
import { startLocalServers } from '../servers/index.js';

const servers = await startLocalServers({ env: {}, only: ['postgres', 'redis', 'clickhouse', 'temporal'] });
process.stdout.write(`${JSON.stringify({ settings: servers.settings, dir: servers.dir })}\n`);
setInterval(() => undefined, 60_000);
