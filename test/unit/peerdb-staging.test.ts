import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../lib/config.js';
import { echoDbPeers } from '../../lib/peerdb/peers.js';
import { unreachableStaging } from '../../lib/peerdb/staging-reachability.js';
import { runCli } from '../support/cli.js';

/** PeerDB's ClickhouseConfig as the Flow API's JSON spells it (peerdb-double/peerdb-flow-api.json, v0.37.x protos). */
const contract = JSON.parse(readFileSync(new URL('../peerdb-double/peerdb-flow-api.json', import.meta.url), 'utf8')) as {
  messages: Record<string, Record<string, { json: string }>>;
};
const clickhouseConfigFields = Object.values(contract.messages['peerdb_peers.ClickhouseConfig']!).map((field) => field.json);

const staging = {
  PEERDB_S3_BUCKET: 'peerdbbucket',
  PEERDB_S3_ENDPOINT: 'http://echodb-host.example.com:9001',
  PEERDB_S3_REGION: 'eu-west-1',
  PEERDB_S3_ACCESS_KEY_ID: 'staging-key',
  PEERDB_S3_SECRET_ACCESS_KEY: 'staging-secret',
};
/** The same staging on AWS S3: no endpoint. */
const awsStaging = Object.fromEntries(Object.entries(staging).filter(([name]) => name !== 'PEERDB_S3_ENDPOINT'));
const load = (env: Record<string, string>) => loadConfig({ env, envFile: false });

function problemsOf(env: Record<string, string>): string[] {
  try {
    load(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const clickhousePeer = (env: Record<string, string>) => {
  const [, target] = echoDbPeers(load(env));
  if (target.type !== 'CLICKHOUSE') throw new Error('expected the ClickHouse peer second');
  return target.clickhouseConfig;
};

describe("the ClickHouse peer's S3 staging", () => {
  it("carries PEERDB_S3_*, under the field names of PeerDB's ClickhouseConfig", () => {
    const peer = clickhousePeer({ CLICKHOUSE_HOST: 'ch.example.com', ...staging });
    expect(peer).toMatchObject({
      s3Path: 's3://peerdbbucket',
      accessKeyId: 'staging-key',
      secretAccessKey: 'staging-secret',
      region: 'eu-west-1',
      endpoint: 'http://echodb-host.example.com:9001',
    });
    expect(Object.keys(peer).filter((field) => !clickhouseConfigFields.includes(field))).toEqual([]);
  });

  it("leaves the endpoint out for AWS S3, and carries nothing without PEERDB_S3_BUCKET, so that PeerDB's own settings apply", () => {
    expect(clickhousePeer(awsStaging)).not.toHaveProperty('endpoint');
    const peer = clickhousePeer({});
    for (const field of ['s3Path', 'accessKeyId', 'secretAccessKey', 'region', 'endpoint']) expect(peer).not.toHaveProperty(field);
  });

  it('asks for the key pair with the bucket, and for the bucket with the rest', () => {
    expect(problemsOf({ PEERDB_S3_BUCKET: 'peerdbbucket' })).toEqual([
      expect.stringMatching(/^PEERDB_S3_ACCESS_KEY_ID: is unset while PEERDB_S3_BUCKET is set; .*MINIO_ROOT_USER/),
      expect.stringMatching(/^PEERDB_S3_SECRET_ACCESS_KEY: is unset while PEERDB_S3_BUCKET is set/),
    ]);
    expect(problemsOf({ PEERDB_S3_ENDPOINT: 'http://minio:9000' })).toEqual([
      expect.stringMatching(/^PEERDB_S3_ENDPOINT: is set while PEERDB_S3_BUCKET is unset; .*PEERDB_CLICKHOUSE_AWS_\*/),
    ]);
  });

  it('takes only the endpoints PeerDB builds the staged files\' URLs from: scheme, host and port, no path', () => {
    for (const endpoint of ['http://minio:9000/', 'http://minio:9000/bucket', 'minio:9000', 's3://minio']) {
      expect(problemsOf({ ...staging, PEERDB_S3_ENDPOINT: endpoint }), endpoint).toEqual([
        expect.stringMatching(/^PEERDB_S3_ENDPOINT: ".*" is not an S3 endpoint PeerDB accepts; expected http\(s\):\/\/host or http\(s\):\/\/host:port/),
      ]);
    }
    expect(load({ ...staging, PEERDB_S3_ENDPOINT: 'https://s3.eu-west-1.amazonaws.com' }).clickhouse.staging?.endpoint).toBe('https://s3.eu-west-1.amazonaws.com');
  });
});

describe('unreachableStaging', () => {
  const problem = (clickhouseHost: string, endpoint: string) =>
    unreachableStaging(load({ CLICKHOUSE_HOST: clickhouseHost, ...staging, PEERDB_S3_ENDPOINT: endpoint }));

  it("accepts a ClickHouse on the stack's network, which reaches the stack's MinIO by its service name", () => {
    expect(problem('clickhouse', 'http://minio:9000')).toBeUndefined();
  });

  it("refuses the Docker host's or the loopback's name for the stack's own ClickHouse, which knows MinIO as minio", () => {
    // The original manual's PEERDB_S3_ENDPOINT: the stack's ClickHouse does not map host.docker.internal.
    expect(problem('clickhouse', 'http://host.docker.internal:9001')).toMatch(/^"http:\/\/host\.docker\.internal:9001" is PeerDB's S3 staging, which ClickHouse at clickhouse cannot reach .*expected .*the stack's MinIO as http:\/\/minio:9000$/);
    expect(problem('clickhouse', 'http://localhost:9001')).toMatch(/ClickHouse at clickhouse cannot reach \(localhost is, to each of them, the machine or container it runs in\)/);
  });

  it("refuses an endpoint only the stack's network, or one machine, knows for a ClickHouse outside it", () => {
    for (const endpoint of ['http://minio:9000', 'http://localhost:9001', 'http://127.0.0.1:9001', 'http://host.docker.internal:9001']) {
      expect(problem('ch.example.com', endpoint), endpoint).toMatch(/is PeerDB's S3 staging, which ClickHouse at ch\.example\.com .*cannot reach.*PEERDB_S3_ENDPOINT=http:\/\/<Docker host>:9001/);
    }
    expect(problem('10.0.0.7', 'http://minio:9000')).toMatch(/ClickHouse at 10\.0\.0\.7/);
    expect(problem('host.docker.internal', 'http://minio:9000')).toMatch(/ClickHouse at host\.docker\.internal/);
  });

  it('accepts an endpoint both can reach, a ClickHouse on the Docker host with the Docker host\'s name, and staging left to PeerDB', () => {
    expect(problem('ch.example.com', 'http://echodb-host.example.com:9001')).toBeUndefined();
    expect(problem('ch.example.com', 'http://10.0.0.5:9001')).toBeUndefined();
    expect(problem('host.docker.internal', 'http://host.docker.internal:9001')).toBeUndefined();
    expect(problem('localhost', 'http://localhost:9001')).toBeUndefined();
    expect(unreachableStaging(load({ CLICKHOUSE_HOST: 'ch.example.com' }))).toBeUndefined();
    expect(unreachableStaging(load({ CLICKHOUSE_HOST: 'ch.example.com', ...awsStaging }))).toBeUndefined();
  });

  it('makes `echodb setup` stop before it touches anything, exit 78, naming PEERDB_S3_ENDPOINT', async () => {
    // Nothing listens on these addresses: setup must fail on the staging before it tries any of them.
    const result = await runCli(['setup'], {
      POSTGRES_HOST: '127.0.0.1',
      POSTGRES_PORT: '1',
      CLICKHOUSE_HOST: 'ch.example.com',
      PEERDB_API_URL: 'http://127.0.0.1:1',
      ...staging,
      PEERDB_S3_ENDPOINT: 'http://minio:9000',
    });
    expect(result.code).toBe(78);
    expect(result.stderr).toMatch(/^invalid configuration:\n {2}PEERDB_S3_ENDPOINT: "http:\/\/minio:9000" is PeerDB's S3 staging, which ClickHouse at ch\.example\.com/);
  });
});
