import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseDotenv } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, VARIABLE_ALIASES } from '../../lib/config.js';
import { echoDbPeers } from '../../lib/peerdb/peers.js';
import { unreachableStaging } from '../../lib/peerdb/staging-reachability.js';
import { searchAttributeTypes } from '../../lib/workflow-safe/search-attributes.js';

// The compose stack cannot run here (no Docker engine): these tests check docker-compose.yml statically, and
// docker-compose 1.29 validates it offline.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const exampleText = readFileSync(join(ROOT, '.env.example'), 'utf8');
const exampleEnv = parseDotenv(exampleText);
const deploymentDoc = readFileSync(join(ROOT, 'docs/deployment.md'), 'utf8');
/** docs/deployment.md's section on the monitoring profile. */
const monitoringDoc = /\n## Monitoring: Prometheus and Grafana\n[\s\S]*?(?=\n## |$)/.exec(deploymentDoc)?.[0] ?? '';

/** The original manual's services and the host ports each publishes. */
const MANUAL_PORTS: Record<string, number[]> = {
  postgres: [5432],
  clickhouse: [8123, 9000],
  redis: [6379],
  peerdb: [9900],
  'flow-api': [8112, 8113],
  'flow-worker': [],
  'flow-snapshot-worker': [],
  'peerdb-ui': [3000],
  minio: [9001, 9002],
  'temporal-ui': [8085],
  'auto-setup': [],
  'auto-mirror-worker-1': [8080],
  'auto-mirror-worker-2': [8081],
  'consistency-checker': [8090],
};
/**
 * The optional profile `monitoring` (docs/deployment.md, "Monitoring: Prometheus and Grafana"): its services and the
 * host ports each publishes. A plain `docker compose up` starts none of them.
 */
const MONITORING_PROFILE = 'monitoring';
const MONITORING_PORTS: Record<string, number[]> = { prometheus: [9090], grafana: [3001] };
const ECHODB_SERVICES = ['auto-setup', 'auto-mirror-worker-1', 'auto-mirror-worker-2', 'consistency-checker'];
const LONG_LIVED = ECHODB_SERVICES.slice(1);
const CONDITIONS = ['service_started', 'service_healthy', 'service_completed_successfully'];
const INSTALL_HINT = 'apt-get install -y --no-install-recommends docker-compose (or: bash scripts/install.sh)';

/**
 * PeerDB's own docker-compose.yml at tag v0.37.4 (commit a2cf85a), read with
 * `git show v0.37.4:docker-compose.yml` in PeerDB-io/peerdb. Its services keep their names here.
 */
const UPSTREAM = {
  /** Who waits for whom, with which condition (a list entry is service_started). */
  dependsOn: {
    catalog: {},
    temporal: { catalog: 'service_healthy' },
    'temporal-admin-tools': { temporal: 'service_started' },
    'temporal-ui': { temporal: 'service_started' },
    'flow-api': { 'temporal-admin-tools': 'service_healthy' },
    'flow-snapshot-worker': { 'temporal-admin-tools': 'service_healthy' },
    'flow-worker': { 'temporal-admin-tools': 'service_healthy' },
    peerdb: { catalog: 'service_healthy' },
    'peerdb-ui': { 'flow-api': 'service_started' },
    minio: {},
  } as Record<string, Record<string, string>>,
  /** Its third-party images, pinned by digest (minio as minio/minio:latest@...). */
  digests: {
    catalog: 'sha256:9a8afca54e7861fd90fab5fdf4c42477a6b1cb7d293595148e674e0a3181de15',
    temporal: 'sha256:f14912b699cf73015ad5c4fc18d522d4b014db90e794039214dfb7c022c2644f',
    'temporal-admin-tools': 'sha256:da0c7a7982b571857173ab8f058e7f139b3054800abb4dcb100445d29a563ee8',
    'temporal-ui': 'sha256:b839b5c798770896c78058db1647d325a19b3acef7fa1fbd9a23fabb1dd7feb2',
    minio: 'sha256:14cea493d9a34af32f524e538b8346cf79f3321eff8e708c1e2960462bd8936e',
  } as Record<string, string>,
  /** PeerDB's own images go by tag (renovate.json5 turns pinDigest off for ghcr.io/peerdb-io/** there). */
  peerdbImages: ['flow-api', 'flow-snapshot-worker', 'flow-worker', 'peerdb', 'peerdb-ui'],
  /** Names a second stack on the same host must not take. */
  project: 'peerdb-quickstart',
  network: 'peerdb_network',
  containers: ['catalog', 'temporal', 'temporal-admin-tools', 'temporal-ui', 'flow_api', 'flow-snapshot-worker', 'flow-worker', 'peerdb-server', 'peerdb-ui', 'peerdb-quickstart-minio-1'],
  volumes: ['peerdb-quickstart_pgdata', 'peerdb-quickstart_minio-data'],
  hostPorts: [9901, 7233, 8085, 8112, 8113, 9900, 3000, 9001, 9002],
};

/** Images the stack does not pin by digest, and why. */
const NOT_PINNED: Record<string, string> = {
  postgres: "the user's source database; PeerDB's compose file has none to follow (POSTGRES_IMAGE can carry a digest)",
  clickhouse: "the user's destination; not in PeerDB's compose file (CLICKHOUSE_IMAGE can carry a digest)",
  redis: "EchoDB's leader election; not in PeerDB's compose file (REDIS_IMAGE can carry a digest)",
  'flow-api': "PeerDB's own image: by tag, as PeerDB's compose file has it",
  'flow-snapshot-worker': "PeerDB's own image: by tag, as PeerDB's compose file has it",
  'flow-worker': "PeerDB's own image: by tag, as PeerDB's compose file has it",
  peerdb: "PeerDB's own image: by tag, as PeerDB's compose file has it",
  'peerdb-ui': "PeerDB's own image: by tag, as PeerDB's compose file has it",
  'auto-setup': 'built from ./Dockerfile, whose base image is pinned by digest',
  'auto-mirror-worker-1': 'built from ./Dockerfile, whose base image is pinned by digest',
  'auto-mirror-worker-2': 'built from ./Dockerfile, whose base image is pinned by digest',
  'consistency-checker': 'built from ./Dockerfile, whose base image is pinned by digest',
  prometheus: 'the optional monitoring profile, by version tag (PROMETHEUS_IMAGE can carry a digest)',
  grafana: 'the optional monitoring profile, by version tag (GRAFANA_IMAGE can carry a digest)',
};

/** Host ports by service: EchoDB's APIs on ECHODB_PUBLISH_ADDRESS, MinIO's S3 API on MINIO_PUBLISH_ADDRESS. */
const ECHODB_API_PORTS = ['auto-mirror-worker-1:8080', 'auto-mirror-worker-2:8081', 'consistency-checker:8090'];
const MINIO_API_PORT = 'minio:9000';

interface Service {
  image?: string;
  profiles?: string[];
  build?: unknown;
  container_name?: string;
  command?: string | string[];
  restart?: string;
  environment?: Record<string, string | number | null> | string[];
  ports?: string[];
  volumes?: string[];
  networks?: string[] | Record<string, unknown>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean };
}
interface ComposeFile {
  services: Record<string, Service>;
  volumes?: Record<string, { name?: string } | null>;
  networks?: Record<string, { name?: string }>;
}

/** Compose's interpolation of one value: $$, ${NAME}, ${NAME:-default} (unset or empty) and ${NAME-default} (unset). */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g, (_match, name?: string, operator?: string, fallback: string = '') => {
    if (name === undefined) return '$';
    const set = env[name];
    if (operator === ':-') return set ? set : fallback;
    if (operator === '-') return set ?? fallback;
    return set ?? '';
  });
}

/** The compose file as `docker compose` sees it with this .env: anchors merged, every string interpolated. */
function loadCompose(env: Record<string, string>): ComposeFile {
  const resolve = (value: unknown): unknown =>
    typeof value === 'string' ? interpolate(value, env)
    : Array.isArray(value) ? (value as unknown[]).map(resolve)
    : value !== null && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]))
    : value;
  return resolve(parseYaml(composeText, { merge: true })) as ComposeFile;
}

const dependenciesOf = (service: Service): Record<string, string> =>
  Array.isArray(service.depends_on)
    ? Object.fromEntries(service.depends_on.map((name) => [name, 'service_started']))
    : Object.fromEntries(Object.entries(service.depends_on ?? {}).map(([name, d]) => [name, d.condition ?? 'service_started']));

const environmentOf = (service: Service): Record<string, string> =>
  Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((entry) => [entry.split('=')[0]!, entry.split('=').slice(1).join('=')]))
    : Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, v === null ? '' : String(v)]));

/** "127.0.0.1:5432:5432" -> 5432; "5432:5432/tcp" -> 5432. */
const hostPort = (mapping: string): number => Number(mapping.replace(/\/\w+$/, '').split(':').at(-2));

/** Every published port: `service:containerPort` -> the host address and port it is published on. */
function publishedPorts(stack: Record<string, Service>): Record<string, { address: string; port: number }> {
  return Object.fromEntries(
    Object.entries(stack).flatMap(([name, service]) =>
      (service.ports ?? []).map((mapping) => {
        const parts = mapping.replace(/\/\w+$/, '').split(':');
        expect(parts, `${name}: ${mapping} names its host address`).toHaveLength(3);
        return [`${name}:${parts[2]}`, { address: parts[0]!, port: Number(parts[1]) }];
      }),
    ),
  );
}

/** The first ```sh block under a heading of docs/deployment.md, as the .env lines it holds. */
function docBlock(heading: string): Record<string, string> {
  const start = deploymentDoc.indexOf(`\n${heading}\n`);
  expect(start, `docs/deployment.md has the heading ${heading}`).toBeGreaterThan(-1);
  const block = /```sh\n([\s\S]*?)```/.exec(deploymentDoc.slice(start))?.[1] ?? '';
  return parseDotenv(block);
}

/**
 * A .env made from .env.example with these lines added, as the manual tells a user to (under its names:
 * .env.example sets neither spelling of an aliased variable, so CLICKHOUSE_DATABASE meets no CLICKHOUSE_DB).
 */
function editedExample(lines: Record<string, string>): Record<string, string> {
  for (const [alias, name] of Object.entries(VARIABLE_ALIASES)) {
    if (lines[alias] !== undefined) expect(exampleEnv[name], `.env.example sets ${name}, which ${alias} would meet`).toBeUndefined();
  }
  return { ...exampleEnv, ...lines };
}

const compose = loadCompose(exampleEnv);
const services = compose.services;
const configOf = (env: Record<string, string>, service = 'auto-setup') =>
  loadConfig({ env: environmentOf(loadCompose(env).services[service]!), envFile: false });

function runDockerCompose(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Only PATH and HOME: a developer's exported variables must not change the interpolation.
    execFile('docker-compose', args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as NodeJS.ErrnoException).code ?? 1) : 0;
        resolve({ code, stdout, stderr });
      });
  });
}

describe('docker-compose.yml', () => {
  it("names its services as the original manual, and publishes the manual's ports on them, and the monitoring profile's", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(Object.keys(MANUAL_PORTS)));
    const published = Object.fromEntries(
      Object.entries(services)
        .filter(([, service]) => service.ports !== undefined)
        .map(([name, service]) => [name, service.ports!.map(hostPort)]),
    );
    const expected = { ...MANUAL_PORTS, ...MONITORING_PORTS };
    expect(published).toEqual(Object.fromEntries(Object.entries(expected).filter(([, ports]) => ports.length > 0)));
  });

  it('starts each service after what it needs: targets exist, conditions are valid and can be met', () => {
    const problems: string[] = [];
    for (const [name, service] of Object.entries(services)) {
      for (const [target, condition] of Object.entries(dependenciesOf(service))) {
        const dependency = services[target];
        if (!dependency) problems.push(`${name} depends on ${target}, which does not exist`);
        else if (!CONDITIONS.includes(condition)) problems.push(`${name}: unknown condition ${condition}`);
        else if (condition === 'service_healthy' && (!dependency.healthcheck?.test || dependency.healthcheck.disable)) {
          problems.push(`${name} waits for ${target} to be healthy, which has no healthcheck`);
        } else if (condition === 'service_completed_successfully' && !['on-failure', 'no', undefined].includes(dependency.restart)) {
          problems.push(`${name} waits for ${target} to complete, but ${target} restarts "${dependency.restart}"`);
        }
      }
    }
    expect(problems).toEqual([]);

    const visiting = new Set<string>();
    const visit = (name: string, path: string[]): void => {
      if (path.includes(name)) throw new Error(`dependency cycle: ${[...path, name].join(' -> ')}`);
      if (visiting.has(name)) return;
      visiting.add(name);
      for (const target of Object.keys(dependenciesOf(services[name]!))) visit(target, [...path, name]);
    };
    for (const name of Object.keys(services)) visit(name, []);
  });

  it("starts PeerDB's services in the order of PeerDB's own compose file at v0.37.4, with the same conditions", () => {
    const ours = Object.fromEntries(Object.keys(UPSTREAM.dependsOn).map((name) => [name, dependenciesOf(services[name]!)]));
    expect(ours).toEqual(UPSTREAM.dependsOn);
  });

  it("starts auto-setup once PeerDB's catalog has its tables, and EchoDB's long-lived services once setup succeeded", () => {
    // peerdb-server migrates the catalog before it listens on 9900 (nexus/server/src/main.rs): its healthcheck asks 9900.
    expect([services.peerdb!.healthcheck?.test].flat().join(' ')).toMatch(/pg_isready .*-p 9900/);
    expect(dependenciesOf(services['auto-setup']!)).toEqual({
      peerdb: 'service_healthy',
      clickhouse: 'service_healthy',
      postgres: 'service_healthy',
      'flow-api': 'service_healthy',
      'temporal-admin-tools': 'service_healthy',
      // PeerDB's validation of the ClickHouse peer writes to the staging bucket.
      'minio-setup': 'service_completed_successfully',
    });
    for (const name of LONG_LIVED) {
      expect(dependenciesOf(services[name]!), name).toMatchObject({ 'auto-setup': 'service_completed_successfully' });
    }
  });

  it('declares every network and named volume its services use, and has every file it mounts', () => {
    const networks = new Set(['default', ...Object.keys(compose.networks ?? {})]);
    const volumes = new Set(Object.keys(compose.volumes ?? {}));
    const problems: string[] = [];
    for (const [name, service] of Object.entries(services)) {
      const used = Array.isArray(service.networks) ? service.networks : Object.keys(service.networks ?? {});
      for (const network of used) if (!networks.has(network)) problems.push(`${name}: network ${network} is not declared`);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.') || source.startsWith('/')) {
          if (!existsSync(join(ROOT, source))) problems.push(`${name}: mounts ${source}, which does not exist`);
        } else if (!volumes.has(source)) {
          problems.push(`${name}: volume ${source} is not declared`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("takes no name PeerDB's quickstart takes on the same host: project, containers, volumes, network; its ports can move", () => {
    for (const env of [exampleEnv, {}]) {
      const stack = loadCompose(env);
      expect(stack.networks?.default?.name).toBe('echodb-network');
      const volumeNames = Object.values(stack.volumes ?? {}).map((volume) => volume?.name);
      expect(volumeNames).toEqual(['echodb_postgres_data', 'echodb_clickhouse_data', 'echodb_catalog_data', 'echodb_minio_data', 'echodb_prometheus_data', 'echodb_grafana_data']);
      expect(volumeNames.filter((name) => UPSTREAM.volumes.includes(name!))).toEqual([]);
    }
    expect(exampleEnv.COMPOSE_PROJECT_NAME).not.toBe(UPSTREAM.project);
    expect(exampleEnv.NETWORK_NAME).not.toBe(UPSTREAM.network);
    // Compose names each container <project>-<service>-1 unless container_name says otherwise, as PeerDB's do.
    expect(Object.entries(services).filter(([, service]) => service.container_name !== undefined)).toEqual([]);
    const containers = Object.keys(services).map((name) => `${exampleEnv.COMPOSE_PROJECT_NAME}-${name}-1`);
    expect(containers.filter((name) => UPSTREAM.containers.includes(name))).toEqual([]);

    // The manual's ports are PeerDB's quickstart's too; docs/deployment.md's block moves every one of them.
    const beside = publishedPorts(loadCompose({ ...exampleEnv, ...docBlock("### Beside PeerDB's quickstart") }).services);
    expect(Object.values(beside).map(({ port }) => port).filter((port) => UPSTREAM.hostPorts.includes(port))).toEqual([]);
  });

  it("gives the manual's container names with Compose v2 (echodb-<service>-1), and the docs say docker-compose v1's", () => {
    const project = exampleEnv.COMPOSE_PROJECT_NAME!;
    expect(project).toBe('echodb');
    const v2 = new Set(Object.keys(services).map((name) => `${project}-${name}-1`));
    // The original manual's commands, and every docker exec / docker logs of docs/deployment.md.
    const manual = ['echodb-postgres-1', 'echodb-auto-setup-1', 'echodb-clickhouse-1', 'echodb-peerdb-1', 'echodb-auto-mirror-worker-1-1'];
    const documented = [...deploymentDoc.matchAll(/docker (?:exec(?: -it)?|logs(?: -f)?) (echodb-[a-z0-9-]+-1)\b/g)].map((match) => match[1]!);
    expect(documented.length).toBeGreaterThan(3);
    expect([...manual, ...documented].filter((name) => !v2.has(name))).toEqual([]);
    expect(deploymentDoc).toContain('echodb_auto-mirror-worker-1_1');
    expect(deploymentDoc).toContain('echodb_postgres_1');
  });

  it('documents in .env.example every variable it reads (the monitoring profile\'s own: in docs/deployment.md)', () => {
    const variables = (text: string) => new Set([...text.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1]!));
    const read = variables(composeText);
    const raw = (parseYaml(composeText, { merge: true }) as ComposeFile).services;
    const monitoring = new Set(Object.values(raw).filter((service) => service.profiles?.includes(MONITORING_PROFILE))
      .flatMap((service) => [...variables(JSON.stringify(service))]));
    // A line NAME= (commented out or not), or, for the original manual's other spellings, a comment naming it; or
    // for a variable of the monitoring profile, a line NAME=default of docs/deployment.md's section on it.
    const documented = (name: string) =>
      new RegExp(`^(# )?${name}=`, 'm').test(exampleText) || new RegExp(`^#.*\\b${name}\\b`, 'm').test(exampleText)
      || (monitoring.has(name) && new RegExp(`^${name}=\\S`, 'm').test(monitoringDoc));
    expect(monitoring.size).toBeGreaterThan(0);
    expect([...read].filter((name) => !documented(name))).toEqual([]);
    expect(read.size).toBeGreaterThan(CONFIG_VARIABLES.length);
    expect(exampleEnv.COMPOSE_PROJECT_NAME).toBe('echodb');
    expect(composeText).not.toMatch(/^name:/m);
  });

  it("gives each EchoDB service every variable EchoDB reads, and a configuration it accepts, pointing at the stack", () => {
    for (const env of [exampleEnv, {}]) {
      const stack = loadCompose(env).services;
      const peerdbEnvironment = environmentOf(stack['flow-worker']!);
      for (const name of ECHODB_SERVICES) {
        const environment = environmentOf(stack[name]!);
        expect(Object.keys(environment).sort(), name).toEqual([...CONFIG_VARIABLES].sort());
        expect(environment, name).toMatchObject({ PEERDB_API_URL: 'http://flow-api:8113', WORKER_ID: name });
        const config = loadConfig({ env: environment, envFile: false });
        expect(config.temporal, name).toEqual({ address: 'temporal:7233', namespace: 'default', taskQueue: 'echodb' });
        expect(config.peerdb.apiUrl).toBe('http://flow-api:8113');
        expect(config.postgres).toMatchObject({ host: 'postgres', port: 5432, database: 'echodb', user: 'echodb', peerHost: 'postgres' });
        expect(config.clickhouse).toMatchObject({ host: 'clickhouse', port: 8123, peerHost: 'clickhouse', peerPort: 9000 });
        expect(config.redis).toMatchObject({ host: 'redis', password: 'echodb' });
        // The ClickHouse peer's staging is PeerDB's own: the stack's MinIO and bucket, with MinIO's root user.
        expect(config.clickhouse.staging).toEqual({
          bucket: peerdbEnvironment.PEERDB_CLICKHOUSE_AWS_S3_BUCKET_NAME,
          endpoint: peerdbEnvironment.PEERDB_CLICKHOUSE_AWS_CREDENTIALS_AWS_ENDPOINT_URL_S3,
          region: peerdbEnvironment.PEERDB_CLICKHOUSE_AWS_CREDENTIALS_AWS_REGION,
          accessKeyId: environmentOf(stack.minio!).MINIO_ROOT_USER,
          secretAccessKey: environmentOf(stack.minio!).MINIO_ROOT_PASSWORD,
        });
        expect(config.clickhouse.staging?.endpoint).toBe('http://minio:9000');
        expect(unreachableStaging(config)).toBeUndefined();
        // The stack's own databases are set up with the same credentials EchoDB is given.
        expect(environmentOf(stack.postgres!)).toMatchObject({ POSTGRES_DB: 'echodb', POSTGRES_USER: 'echodb', POSTGRES_PASSWORD: config.postgres.password });
        expect(environmentOf(stack.clickhouse!)).toMatchObject({ CLICKHOUSE_USER: config.clickhouse.user, CLICKHOUSE_PASSWORD: config.clickhouse.password });
        expect(stack.redis!.command).toEqual(expect.arrayContaining(['--requirepass', config.redis!.password]));
      }
    }
  });

  it('mounts ./certs read-only at /certs in every EchoDB container, for the *_FILE variables', () => {
    for (const name of ECHODB_SERVICES) expect(services[name]!.volumes, name).toContain('./certs:/certs:ro');
    const certificates = { CLICKHOUSE_SECURE: 'true', CLICKHOUSE_CA_FILE: '/certs/clickhouse-ca.pem', POSTGRES_SSLMODE: 'verify-full', POSTGRES_KEY_FILE: '/certs/postgres-client.key' };
    const environment = environmentOf(loadCompose({ ...exampleEnv, ...certificates }).services['auto-mirror-worker-1']!);
    expect(environment).toMatchObject(certificates);
  });

  describe("the original manual's scenarios, by .env alone", () => {
    it('1 and 2, local and on a VM: the default .env answers on the VM\'s address on EchoDB\'s ports, and on no other', () => {
      for (const env of [exampleEnv, {}]) {
        const ports = publishedPorts(loadCompose(env).services);
        for (const [port, { address }] of Object.entries(ports)) {
          expect(address, port).toBe(ECHODB_API_PORTS.includes(port) ? '0.0.0.0' : '127.0.0.1');
        }
        expect(Object.keys(ports)).toEqual(expect.arrayContaining(ECHODB_API_PORTS));
      }
    });

    it("3A, a remote PostgreSQL: EchoDB and PeerDB's source peer use it; ClickHouse stays the stack's", () => {
      const env = editedExample(docBlock('#### 3A. Remote PostgreSQL'));
      for (const name of ECHODB_SERVICES) {
        const config = configOf(env, name);
        expect(config.postgres).toMatchObject({ host: 'your-postgres.example.com', peerHost: 'your-postgres.example.com', user: 'your_remote_user', password: 'your_remote_password', database: 'your_remote_db', sslMode: 'require' });
        expect(config.clickhouse).toMatchObject({ host: 'clickhouse', peerHost: 'clickhouse' });
        expect(unreachableStaging(config)).toBeUndefined();
      }
    });

    it("3B, a remote ClickHouse: setup refuses the stack-only staging endpoint, and accepts the MinIO the docs publish", () => {
      const remote = {
        CLICKHOUSE_HOST: 'your-clickhouse.example.com',
        CLICKHOUSE_PORT: '8123',
        CLICKHOUSE_USER: 'your_remote_user',
        CLICKHOUSE_PASSWORD: 'your_remote_password',
        CLICKHOUSE_DATABASE: 'your_remote_db',
      };
      // The manual's lines alone: ClickHouse would never read what PeerDB stages at http://minio:9000.
      const manualOnly = configOf(editedExample(remote));
      expect(manualOnly.clickhouse).toMatchObject({ host: 'your-clickhouse.example.com', peerHost: 'your-clickhouse.example.com', database: 'your_remote_db', user: 'your_remote_user' });
      expect(unreachableStaging(manualOnly)).toMatch(/^"http:\/\/minio:9000" is PeerDB's S3 staging, which ClickHouse at your-clickhouse\.example\.com .*PEERDB_S3_ENDPOINT=http:\/\/<Docker host>:9001/);

      // With docs/deployment.md's lines: the stack's MinIO on the Docker host's address, for PeerDB and ClickHouse.
      const documented = docBlock('#### 3B. Remote ClickHouse');
      const env = editedExample({ ...remote, ...documented });
      const config = configOf(env);
      expect(unreachableStaging(config)).toBeUndefined();
      const stack = loadCompose(env).services;
      expect(environmentOf(stack['flow-worker']!).PEERDB_CLICKHOUSE_AWS_CREDENTIALS_AWS_ENDPOINT_URL_S3).toBe(documented.PEERDB_S3_ENDPOINT);
      const [, target] = echoDbPeers(config);
      expect(target).toMatchObject({ type: 'CLICKHOUSE', clickhouseConfig: { endpoint: documented.PEERDB_S3_ENDPOINT, s3Path: 's3://peerdbbucket' } });
      // MinIO's S3 API, and nothing more, leaves the loopback.
      const ports = publishedPorts(stack);
      for (const [port, { address }] of Object.entries(ports)) {
        expect(address, port).toBe(ECHODB_API_PORTS.includes(port) || port === MINIO_API_PORT ? '0.0.0.0' : '127.0.0.1');
      }
    });

    it('3C, both remote: each side as in 3A and 3B', () => {
      const env = editedExample(docBlock('#### 3C. Both remote'));
      const config = configOf(env);
      expect(config.postgres).toMatchObject({ host: 'postgres1.example.com', database: 'production_db' });
      expect(config.clickhouse).toMatchObject({ host: 'clickhouse.example.com', database: 'analytics_db' });
      expect(unreachableStaging(config)).toBeUndefined();
      expect(publishedPorts(loadCompose(env).services)[MINIO_API_PORT]?.address).toBe('0.0.0.0');
    });
  });

  it("publishes PeerDB's Flow API, its catalog, Temporal, MinIO and the databases beyond the loopback only when asked, each by its own variable", () => {
    // catalog and temporal are never published (PeerDB publishes them on 9901 and 7233).
    expect(services.catalog!.ports).toBeUndefined();
    expect(services.temporal!.ports).toBeUndefined();
    const ports = publishedPorts(loadCompose({ ...exampleEnv, PUBLISH_ADDRESS: '10.0.0.5' }).services);
    for (const [port, { address }] of Object.entries(ports)) {
      const expected = ECHODB_API_PORTS.includes(port) ? '0.0.0.0' : port === MINIO_API_PORT ? '127.0.0.1' : '10.0.0.5';
      expect(address, port).toBe(expected);
    }
    const local = publishedPorts(loadCompose({ ...exampleEnv, ECHODB_PUBLISH_ADDRESS: '127.0.0.1' }).services);
    expect(Object.values(local).map(({ address }) => address)).toEqual(Object.values(local).map(() => '127.0.0.1'));
  });

  it("puts PeerDB's UI behind a password and a session secret", () => {
    for (const env of [exampleEnv, {}]) {
      const ui = environmentOf(loadCompose(env).services['peerdb-ui']!);
      expect(ui.PEERDB_PASSWORD).not.toBe('');
      expect(ui.NEXTAUTH_SECRET).not.toBe('');
    }
    const ui = environmentOf(loadCompose({ ...exampleEnv, PEERDB_PASSWORD: 'ui-secret', PEERDB_NEXTAUTH_SECRET: 'session-secret' }).services['peerdb-ui']!);
    expect(ui).toMatchObject({ PEERDB_PASSWORD: 'ui-secret', NEXTAUTH_SECRET: 'session-secret' });
  });

  it("pins every image by digest, PeerDB's third-party ones by PeerDB's digests, or says why not", () => {
    for (const env of [exampleEnv, {}]) {
      const stack = loadCompose(env).services;
      const unexplained = Object.entries(stack)
        .filter(([name, service]) => !/@sha256:[0-9a-f]{64}$/.test(service.image ?? '') && NOT_PINNED[name] === undefined)
        .map(([name, service]) => `${name}: ${service.image}`);
      expect(unexplained).toEqual([]);
      for (const [name, digest] of Object.entries(UPSTREAM.digests)) expect(stack[name]!.image, name).toMatch(new RegExp(`@${digest}$`));
      for (const name of UPSTREAM.peerdbImages) expect(stack[name]!.image, name).toMatch(/^ghcr\.io\/peerdb-io\/[a-z-]+:stable-v0\.37\.4$/);
    }
    for (const name of ECHODB_SERVICES) expect(services[name]!.build, name).toEqual({ context: '.' });
  });

  it('runs setup once, then two workers with every role and the consistency checker with the API', () => {
    expect(services['auto-setup']).toMatchObject({ command: ['setup'], restart: 'on-failure', healthcheck: { disable: true } });
    const roles = (name: string) => ({ command: services[name]!.command, healthPort: environmentOf(services[name]!).HEALTH_PORT });
    expect(roles('auto-mirror-worker-1')).toEqual({ command: ['run', '--roles', 'worker,listener,api'], healthPort: '8080' });
    expect(roles('auto-mirror-worker-2')).toEqual({ command: ['run', '--roles', 'worker,listener,api'], healthPort: '8081' });
    expect(roles('consistency-checker')).toEqual({ command: ['run', '--roles', 'api'], healthPort: '8090' });
    for (const name of LONG_LIVED) {
      expect(dependenciesOf(services[name]!), name).toMatchObject({
        'auto-setup': 'service_completed_successfully',
        'flow-api': 'service_healthy',
        'temporal-admin-tools': 'service_healthy',
      });
    }
  });

  it("registers PeerDB's MirrorName and every EchoDB search attribute before PeerDB and EchoDB start", () => {
    const script = [services['temporal-admin-tools']!.command].flat().join('\n');
    expect(script).toContain('register default MirrorName Text');
    for (const [name, type] of Object.entries(searchAttributeTypes)) {
      expect(script).toContain(`register "$ECHODB_NAMESPACE" ${name} ${type}`);
    }
    for (const name of ['flow-api', 'flow-worker', 'flow-snapshot-worker', ...ECHODB_SERVICES]) {
      expect(dependenciesOf(services[name]!)['temporal-admin-tools'], name).toBe('service_healthy');
    }
  });

  it('runs Prometheus and Grafana in the monitoring profile only, so that a plain `up` starts what it did without it', () => {
    const profiled = Object.entries(services).filter(([, service]) => service.profiles !== undefined);
    expect(Object.fromEntries(profiled.map(([name, service]) => [name, service.profiles]))).toEqual(
      Object.fromEntries(Object.keys(MONITORING_PORTS).map((name) => [name, [MONITORING_PROFILE]])));
    // Nothing outside the profile waits for them.
    for (const [name, service] of Object.entries(services).filter(([, candidate]) => candidate.profiles === undefined)) {
      expect(Object.keys(dependenciesOf(service)).filter((target) => services[target]!.profiles !== undefined), name).toEqual([]);
    }
    for (const env of [exampleEnv, {}]) {
      const stack = loadCompose(env).services;
      expect(stack.prometheus!.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
      expect(stack.grafana!.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
      // Grafana's admin has a password by default, anonymous viewing is off.
      expect(environmentOf(stack.grafana!)).toMatchObject({ GF_SECURITY_ADMIN_USER: 'admin', GF_SECURITY_ADMIN_PASSWORD: 'echodb', GF_AUTH_ANONYMOUS_ENABLED: 'false' });
    }
    const grafana = environmentOf(loadCompose({ ...exampleEnv, GRAFANA_ADMIN_PASSWORD: 'secret', GRAFANA_ANONYMOUS_ENABLED: 'true' }).services.grafana!);
    expect(grafana).toMatchObject({ GF_SECURITY_ADMIN_PASSWORD: 'secret', GF_AUTH_ANONYMOUS_ENABLED: 'true', GF_AUTH_ANONYMOUS_ORG_ROLE: 'Viewer' });
    // docs/deployment.md says how to start them.
    expect(monitoringDoc).toContain(`docker compose --profile ${MONITORING_PROFILE} up -d`);
  });

  it('runs the source PostgreSQL with logical replication and room for the mirrors', () => {
    const command = [services.postgres!.command].flat().join(' ');
    expect(command).toContain('wal_level=logical');
    const setting = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(command)?.[1]);
    expect(setting('max_replication_slots')).toBeGreaterThanOrEqual(4);
    expect(setting('max_wal_senders')).toBeGreaterThanOrEqual(setting('max_replication_slots'));
  });

  it('passes `docker-compose config -q` (docker-compose 1.29, offline) with .env.example, with no .env, and in each scenario', async () => {
    const version = await runDockerCompose(['version', '--short']);
    if (version.code === 'ENOENT') throw new Error(`docker-compose is not installed: ${INSTALL_HINT}`);
    const dir = mkdtempSync(join(tmpdir(), 'echodb-compose-'));
    const asDotenv = (env: Record<string, string>) => Object.entries(env).map(([name, value]) => `${name}=${value}\n`).join('');
    try {
      const files: [string, string][] = [
        ['example.env', exampleText],
        ['empty.env', ''],
        ['3b.env', asDotenv(editedExample(docBlock('#### 3B. Remote ClickHouse')))],
        ['3c.env', asDotenv(editedExample(docBlock('#### 3C. Both remote')))],
        ['beside-peerdb.env', asDotenv({ ...exampleEnv, ...docBlock("### Beside PeerDB's quickstart") })],
      ];
      for (const [file, text] of files) {
        writeFileSync(join(dir, file), text);
        for (const profile of [[], ['--profile', MONITORING_PROFILE]]) {
          const result = await runDockerCompose(['--env-file', join(dir, file), ...profile, '-f', COMPOSE_FILE, 'config', '-q']);
          expect(result, `${file} ${profile.join(' ')}`).toEqual({ code: 0, stdout: '', stderr: '' });
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

  it('runs the compiled CLI with production dependencies only, as a non-root user, with a health check', () => {
    expect(runtime).toMatch(/^RUN npm ci --omit=dev/m);
    expect(runtime).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime).toContain('ENTRYPOINT ["node", "dist/cli/echodb.js"]');
    expect(runtime).toContain('CMD ["run"]');
    expect(runtime).toMatch(/^HEALTHCHECK .*\n.*process\.env\.HEALTH_PORT \|\| 8080\}\/health/m);
    expect((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: unknown }).bin).toEqual({ echodb: 'dist/cli/echodb.js' });
  });

  it('builds on Node 24 LTS, pinned by digest, in every stage, and says how to refresh the digest', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim@sha256:[0-9a-f]{64}$/m);
    expect([...dockerfile.matchAll(/^FROM (\S+)/gm)].map((match) => match[1])).toEqual(['${NODE_IMAGE}', '${NODE_IMAGE}']);
    expect(dockerfile).toContain('docker buildx imagetools inspect node:24-bookworm-slim');
  });
});
