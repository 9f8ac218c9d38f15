import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { clickhouseServerBinary } from './binaries.js';
import { ManagedProcess, isRoot } from './managed-process.js';
import { freePorts } from '../../lib/free-port.js';
import { chownTo, randomSecret } from './files.js';
import type { TestCertificates } from './certificates.js';

export interface ClickHouseSettings {
  /** The HTTP interface, e.g. http://127.0.0.1:8123, or https:// when the server accepts TLS only */
  url: string;
  /** With https: the CA (PEM text) that signed the server's certificate. */
  ca?: string;
  /** The native protocol's port, which PeerDB's ClickHouse peer uses. */
  nativePort: number;
  user: string;
  password: string;
}

const OS_USER = 'clickhouse';

/**
 * A throwaway ClickHouse with a generated config (its own data path, loopback ports, user `default` with a
 * password). The config root is <yandex>: the server available here is 18.16. With `tls`, it listens with TLS
 * only: HTTPS (https_port) and the native protocol over TLS (tcp_port_secure), as ClickHouse Cloud does.
 */
export async function startClickHouse(
  dir: string,
  options: { tls?: TestCertificates } = {},
): Promise<{ settings: ClickHouseSettings; process: ManagedProcess }> {
  fs.mkdirSync(dir, { recursive: true });
  const [httpPort, tcpPort] = await freePorts(2);
  const password = randomSecret();
  const configFile = path.join(dir, 'config.xml');
  if (options.tls) {
    fs.copyFileSync(options.tls.serverCertFile, path.join(dir, 'server.pem'));
    fs.copyFileSync(options.tls.serverKeyFile, path.join(dir, 'server.key'));
  }
  fs.writeFileSync(configFile, serverConfig(dir, httpPort!, tcpPort!, options.tls !== undefined));
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
  const settings: ClickHouseSettings = options.tls
    ? { url: `https://127.0.0.1:${httpPort}`, ca: options.tls.ca, nativePort: tcpPort!, user: 'default', password }
    : { url: `http://127.0.0.1:${httpPort}`, nativePort: tcpPort!, user: 'default', password };
  // /ping answers before users are loaded and whatever the password: check with a real query.
  await process.waitUntilReady(() => canQuery(settings), 30_000);
  return { settings, process };
}

async function canQuery(settings: ClickHouseSettings): Promise<boolean> {
  const { status, body } = await get(`${settings.url}/?query=SELECT%201`, settings);
  return status === 200 && body.trim() === '1';
}

/** fetch cannot be given a CA: node's http(s) module can. */
function get(url: string, settings: ClickHouseSettings): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = (url.startsWith('https:') ? https : http).get(url, {
      headers: { 'X-ClickHouse-User': settings.user, 'X-ClickHouse-Key': settings.password },
      timeout: 1000,
      ...(settings.ca === undefined ? {} : { ca: settings.ca }),
    }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
  });
}

function serverConfig(dir: string, httpPort: number, tcpPort: number, tls: boolean): string {
  const listeners = tls
    ? `<https_port>${httpPort}</https_port>
  <tcp_port_secure>${tcpPort}</tcp_port_secure>
  <openSSL>
    <server>
      <certificateFile>${dir}/server.pem</certificateFile>
      <privateKeyFile>${dir}/server.key</privateKeyFile>
      <verificationMode>none</verificationMode>
      <loadDefaultCAFile>false</loadDefaultCAFile>
      <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
    </server>
  </openSSL>`
    : `<http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>`;
  return `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${dir}/server.log</log>
    <errorlog>${dir}/error.log</errorlog>
    <console>0</console>
  </logger>
  ${listeners}
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
