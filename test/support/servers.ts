import { inject } from 'vitest';
import type { ServerSettings } from '../servers/index.js';

/**
 * The real servers test/global-setup.ts started for this run. Only the integration projects provide them: a test
 * of the unit or workflows project that reaches for them fails here, saying where it belongs.
 */
export function testServers(): ServerSettings {
  const servers = inject('servers') as ServerSettings | undefined;
  if (!servers) {
    throw new Error(
      'this test needs the real servers, which only the integration projects start (test/global-setup.ts): ' +
        'it belongs in test/, not in test/unit/ or test/workflows/',
    );
  }
  return servers;
}
