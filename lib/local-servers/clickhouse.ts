import fs from 'node:fs';
import path from 'node:path';
import { clickhouseServerBinary } from './binaries.js';
import { ManagedProcess, isRoot } from './managed-process.js';
import { freePorts } from './ports.js';
import { chownTo, randomSecret } from './files.js';

export interface ClickHouseSettings {
  /** The HTTP interface, e.g. http://127.0.0.1:8123 */
  url: string;
  /** The native protocol's port, which PeerDB's ClickHouse peer uses. */
  nativePort: number;
  user: string;
  password: string;
}

const OS_USER = 'clickhouse';

/**
 * A throwaway ClickHouse with a generated config (its own data path, loopback ports, user `default` with a
 * password). The config root is <yandex>: the server available here is 18.16.
 */
export async function startClickHouse(dir: string): Promise<{ settings: ClickHouseSettings; process: ManagedProcess }> {
  fs.mkdirSync(dir, { recursive: true });
  const [httpPort, tcpPort] = await freePorts(2);
  const password = randomSecret();
  const configFile = path.join(dir, 'config.xml');
  fs.writeFileSync(configFile, serverConfig(dir, httpPort!, tcpPort!));
  fs.writeFileSync(path.join(dir, 'users.xml'), usersConfig(password));
  if (isRoot()) chownTo(dir, OS_USER);

  const process = new ManagedProcess({
    name: 'ClickHouse',
    command: clickhouseServerBinary(),
    args: [`--config-file=${configFile}`],
    runAs: OS_USER,
    cwd: dir,
    logFile: path.join(dir, 'stdout.log'),
  });
  const settings: ClickHouseSettings = { url: `http://127.0.0.1:${httpPort}`, nativePort: tcpPort!, user: 'default', password };
  // /ping answers before users are loaded and whatever the password: check with a real query.
  await process.waitUntilReady(() => canQuery(settings), 30_000);
  return { settings, process };
}

async function canQuery(settings: ClickHouseSettings): Promise<boolean> {
  const response = await fetch(`${settings.url}/?query=SELECT%201`, {
    headers: { 'X-ClickHouse-User': settings.user, 'X-ClickHouse-Key': settings.password },
    signal: AbortSignal.timeout(1000),
  });
  return response.ok && (await response.text()).trim() === '1';
}

function serverConfig(dir: string, httpPort: number, tcpPort: number): string {
  return `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${dir}/server.log</log>
    <errorlog>${dir}/error.log</errorlog>
    <console>0</console>
  </logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <user_files_path>${dir}/user_files/</user_files_path>
  <format_schema_path>${dir}/format_schemas/</format_schema_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
`;
}

function usersConfig(password: string): string {
  return `<?xml version="1.0"?>
<yandex>
  <profiles>
    <default><max_memory_usage>4000000000</max_memory_usage></default>
  </profiles>
  <users>
    <default>
      <password>${password}</password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
    </default>
  </quotas>
</yandex>
`;
}
