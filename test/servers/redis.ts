import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { redisServerBinary } from './binaries.js';
import { ManagedProcess } from './managed-process.js';
import { freePort } from '../../lib/free-port.js';
import { randomSecret } from './files.js';

export interface RedisSettings {
  host: string;
  port: number;
  password: string;
}

/** A throwaway Redis with a password, nothing persisted. */
export async function startRedis(dir: string): Promise<{ settings: RedisSettings; process: ManagedProcess }> {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const password = randomSecret();
  const process = new ManagedProcess({
    name: 'Redis',
    command: redisServerBinary(),
    args: ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
      '--requirepass', password, '--dir', dir, '--daemonize', 'no'],
    logFile: path.join(dir, 'redis.log'),
  });
  const settings: RedisSettings = { host: '127.0.0.1', port, password };
  await process.waitUntilReady(() => canPing(settings), 15_000);
  return { settings, process };
}

async function canPing(settings: RedisSettings): Promise<boolean> {
  const redis = new Redis({ ...settings, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } finally {
    redis.disconnect();
  }
}
