import type { ServerSettings } from '../test/servers/index.js';
import { freePorts } from '../lib/free-port.js';
import { startEchoStack, type EchoStack } from '../test/support/echo-stack.js';

/**
 * The benchmarks' deployment: a test stack whose `echodb run` (`roles`) serves the HTTP API on free ports, with
 * the windows and timeouts of a large load rather than a test's.
 */
export async function startBenchStack(
  servers: ServerSettings,
  env: Record<string, string> = {},
  roles = ['worker', 'listener', 'api'],
): Promise<{ stack: EchoStack; api: string }> {
  const [healthPort, checkerPort] = await freePorts(2);
  const stack = await startEchoStack(
    {
      HEALTH_PORT: String(healthPort),
      CONSISTENCY_CHECKER_PORT: String(checkerPort),
      COALESCE_WINDOW: '1',
      VERIFY_DELAY: '1',
      PEERDB_REQUEST_TIMEOUT: '30',
      ...env,
    },
    servers,
    { roles },
  );
  return { stack, api: `http://127.0.0.1:${healthPort}` };
}
