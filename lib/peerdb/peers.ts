import type { Config } from '../config.js';
import { tlsMaterial } from '../tls.js';
import type { PeerDbClient } from './client.js';
import type { ClickhouseConfig, Peer } from './types.js';

/**
 * The two peers every mirror reads from and writes to: the source PostgreSQL and the destination ClickHouse, as
 * PeerDB's containers reach them (POSTGRES_PEER_*, CLICKHOUSE_PEER_*), not as EchoDB does.
 */
export function echoDbPeers(config: Config): [source: Peer, target: Peer] {
  const postgresTls = tlsMaterial(config.postgres);
  const clickhouseTls = tlsMaterial(config.clickhouse);
  return [
    {
      name: config.peerdb.sourcePeerName,
      type: 'POSTGRES',
      postgresConfig: {
        host: config.postgres.peerHost,
        port: config.postgres.peerPort,
        user: config.postgres.user,
        password: config.postgres.password,
        database: config.postgres.database,
        requireTls: config.postgres.sslMode !== 'disable',
        // PeerDB checks the certificate whenever it uses TLS (pkg/common/tls.go CreateTlsConfig); libpq's require
        // does not.
        ...(config.postgres.sslMode === 'require' ? { skipCertVerification: true } : {}),
        ...(postgresTls.ca === undefined ? {} : { rootCa: postgresTls.ca }),
        ...(postgresTls.cert === undefined ? {} : { clientTls: { certificate: postgresTls.cert, privateKey: postgresTls.key! } }),
      },
    },
    {
      name: config.peerdb.targetPeerName,
      type: 'CLICKHOUSE',
      clickhouseConfig: {
        host: config.clickhouse.peerHost,
        port: config.clickhouse.peerPort,
        user: config.clickhouse.user,
        password: config.clickhouse.password,
        database: config.clickhouse.database,
        disableTls: !config.clickhouse.secure,
        ...(clickhouseTls.ca === undefined ? {} : { rootCa: clickhouseTls.ca }),
        ...(clickhouseTls.cert === undefined ? {} : { certificate: clickhouseTls.cert, privateKey: clickhouseTls.key! }),
        ...(config.clickhouse.tlsServerName === undefined ? {} : { tlsHost: config.clickhouse.tlsServerName }),
        ...stagingFields(config.clickhouse.staging),
      },
    },
  ];
}

/**
 * The staging the ClickHouse peer carries, which PeerDB prefers to its PEERDB_CLICKHOUSE_AWS_* settings
 * (connectors/clickhouse/staging_s3.go newS3StagingStore): no prefix in the path, since PeerDB puts the mirror's name
 * in every staged file's key.
 */
function stagingFields(staging: Config['clickhouse']['staging']): Partial<ClickhouseConfig> {
  if (staging === undefined) return {};
  return {
    s3Path: `s3://${staging.bucket}`,
    accessKeyId: staging.accessKeyId,
    secretAccessKey: staging.secretAccessKey,
    region: staging.region,
    ...(staging.endpoint === undefined ? {} : { endpoint: staging.endpoint }),
  };
}

/**
 * Creates both peers, or updates them to the configuration (PeerDB's allowUpdate), so it is safe to repeat: `echodb
 * setup` runs it, and so does each mirror workflow before it creates a mirror. Returns the peers it sent.
 */
export async function ensurePeers(peerdb: Pick<PeerDbClient, 'createOrUpdatePeer'>, config: Config): Promise<Peer[]> {
  const peers = echoDbPeers(config);
  for (const peer of peers) await peerdb.createOrUpdatePeer(peer);
  return peers;
}

/** `postgres_source (POSTGRES echodb@postgres:5432/echodb)`, for logs and the CLI; never the password. */
export function describePeer(peer: Peer): string {
  const { user, host, port, database } = peer.type === 'POSTGRES' ? peer.postgresConfig : peer.clickhouseConfig;
  return `${peer.name} (${peer.type} ${user}@${host}:${port}/${database})`;
}
