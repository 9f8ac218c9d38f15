/**
 * Whether ClickHouse can read what PeerDB stages for it. PeerDB uploads each batch to the S3 staging and then has
 * ClickHouse read it with `s3('<endpoint>/<bucket>/<key>', ...)` (connectors/clickhouse/staging_s3.go
 * TableFunctionExpr): the same endpoint serves both, so a ClickHouse outside the compose stack's Docker network
 * cannot read from the stack's MinIO at http://minio:9000. PeerDB accepts such a peer (its validation writes to the
 * bucket but never asks ClickHouse to read it) and every sync then fails; `echodb setup` refuses it up front.
 */
import { isIP } from 'node:net';
import type { Config } from '../config.js';

/** A compose service name such as `minio` or `clickhouse`: one label, resolvable only on the stack's network. */
function onStackNetwork(host: string): boolean {
  return !host.includes('.') && isIP(host) === 0 && host !== 'localhost';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

/** Why ClickHouse at `clickhouseHost` cannot reach an endpoint on `endpointHost`, or undefined when it can. */
function whyUnreachable(endpointHost: string, clickhouseHost: string): string | undefined {
  if (onStackNetwork(endpointHost) && !onStackNetwork(clickhouseHost)) {
    return `${endpointHost} is a name on the compose stack's Docker network, which ClickHouse is not on`;
  }
  if (isLoopback(endpointHost) && !isLoopback(clickhouseHost)) {
    return `${endpointHost} is, to each of them, the machine or container it runs in`;
  }
  if (endpointHost === 'host.docker.internal' && clickhouseHost !== 'host.docker.internal') {
    return 'host.docker.internal names the Docker host only in the containers that map it, not in ClickHouse\'s';
  }
  return undefined;
}

/**
 * The problem, worded for the operator with the variable to set, when ClickHouse cannot reach the staging endpoint
 * by its name; otherwise undefined. Without a staging of EchoDB's own (PEERDB_S3_BUCKET unset) PeerDB's settings
 * apply, which EchoDB cannot see.
 */
export function unreachableStaging(config: Config): string | undefined {
  const { staging, peerHost } = config.clickhouse;
  if (staging?.endpoint === undefined) return undefined;
  const endpointHost = new URL(staging.endpoint).hostname.replace(/^\[(.*)\]$/, '$1');
  const why = whyUnreachable(endpointHost, peerHost);
  if (why === undefined) return undefined;
  const fix = onStackNetwork(peerHost)
    ? "the stack's MinIO as http://minio:9000"
    : "the stack's MinIO published on the Docker host (MINIO_PUBLISH_ADDRESS=0.0.0.0, " +
      'PEERDB_S3_ENDPOINT=http://<Docker host>:9001), or an S3 bucket (PEERDB_S3_ENDPOINT, PEERDB_S3_BUCKET, ' +
      'PEERDB_S3_REGION and its keys: PEERDB_S3_ACCESS_KEY_ID and PEERDB_S3_SECRET_ACCESS_KEY, which ' +
      'docker-compose.yml takes from MINIO_ROOT_USER and MINIO_ROOT_PASSWORD)';
  return (
    `${JSON.stringify(staging.endpoint)} is PeerDB's S3 staging, which ClickHouse at ${peerHost} cannot reach ` +
    `(${why}), yet ClickHouse reads every staged batch from there itself (s3()); expected an endpoint both PeerDB ` +
    `and ClickHouse reach: ${fix}`
  );
}
