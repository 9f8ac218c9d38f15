import type { Config } from '../config.js';
import type { PeerDbClient } from './client.js';
import type { Peer } from './types.js';

/**
 * The two peers every mirror reads from and writes to: the source PostgreSQL and the destination ClickHouse, as
 * PeerDB's containers reach them (POSTGRES_PEER_*, CLICKHOUSE_PEER_*), not as EchoDB does.
 */
export function echoDbPeers(config: Config): [source: Peer, target: Peer] {
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
        disableTls: true,
      },
    },
  ];
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
