import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseDotenv } from 'dotenv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../lib/config.js';
import { searchAttributeTypes } from '../lib/search-attributes.js';

// The compose stack cannot run here (no Docker engine): these tests check docker-compose.yml statically, and
// docker-compose 1.29 validates it offline.

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMPOSE_FILE = join(ROOT, 'docker-compose.yml');
const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const exampleText = readFileSync(join(ROOT, '.env.example'), 'utf8');
const exampleEnv = parseDotenv(exampleText);

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
const ECHODB_SERVICES = ['auto-setup', 'auto-mirror-worker-1', 'auto-mirror-worker-2', 'consistency-checker'];
const CONDITIONS = ['service_started', 'service_healthy', 'service_completed_successfully'];
const INSTALL_HINT = 'apt-get install -y --no-install-recommends docker-compose (or: bash scripts/install.sh)';

interface Service {
  image?: string;
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
  volumes?: Record<string, unknown>;
  networks?: Record<string, unknown>;
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

const compose = loadCompose(exampleEnv);
const services = compose.services;

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
  it("names its services as the original manual, and publishes the manual's ports on them", () => {
    expect(Object.keys(services)).toEqual(expect.arrayContaining(Object.keys(MANUAL_PORTS)));
    const published = Object.fromEntries(
      Object.entries(services)
        .filter(([, service]) => service.ports !== undefined)
        .map(([name, service]) => [name, service.ports!.map(hostPort)]),
    );
    expect(published).toEqual(Object.fromEntries(Object.entries(MANUAL_PORTS).filter(([, ports]) => ports.length > 0)));
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
    expect(compose.networks?.default).toEqual({ name: 'peerdb_network' });
  });

  it('documents in .env.example every variable it reads', () => {
    const read = new Set([...composeText.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((match) => match[1]!));
    const undocumented = [...read].filter((name) => !new RegExp(`^(# )?${name}=`, 'm').test(exampleText));
    expect(undocumented).toEqual([]);
    expect(read.size).toBeGreaterThan(CONFIG_VARIABLES.length);
    expect(exampleEnv.COMPOSE_PROJECT_NAME).toBe('echodb');
    expect(composeText).not.toMatch(/^name:/m);
  });

  it("gives each EchoDB service a configuration EchoDB accepts, pointing at PeerDB's Temporal and flow-api", () => {
    for (const env of [exampleEnv, {}]) {
      const stack = loadCompose(env).services;
      for (const name of ECHODB_SERVICES) {
        const environment = environmentOf(stack[name]!);
        expect(Object.keys(environment).sort(), name).toEqual([...CONFIG_VARIABLES].sort());
        expect(environment, name).toMatchObject({ TEMPORAL_ADDRESS: 'temporal:7233', PEERDB_API_URL: 'http://flow-api:8113', WORKER_ID: name });
        const config = loadConfig({ env: environment, envFile: false });
        expect(config.temporal, name).toEqual({ address: 'temporal:7233', namespace: 'default', taskQueue: 'echodb' });
        expect(config.peerdb.apiUrl).toBe('http://flow-api:8113');
        expect(config.postgres).toMatchObject({ host: 'postgres', port: 5432, database: 'echodb', user: 'echodb', peerHost: 'postgres' });
        expect(config.clickhouse).toMatchObject({ host: 'clickhouse', port: 8123, peerHost: 'clickhouse', peerPort: 9000 });
        expect(config.redis).toMatchObject({ host: 'redis', password: 'echodb' });
        // The stack's own databases are set up with the same credentials EchoDB is given.
        expect(environmentOf(stack.postgres!)).toMatchObject({ POSTGRES_DB: 'echodb', POSTGRES_USER: 'echodb', POSTGRES_PASSWORD: config.postgres.password });
        expect(environmentOf(stack.clickhouse!)).toMatchObject({ CLICKHOUSE_USER: config.clickhouse.user, CLICKHOUSE_PASSWORD: config.clickhouse.password });
        expect(stack.redis!.command).toEqual(expect.arrayContaining(['--requirepass', config.redis!.password]));
      }
    }
  });

  it('reaches a remote PostgreSQL and a remote ClickHouse through .env alone', () => {
    const remote = {
      ...exampleEnv,
      POSTGRES_HOST: 'pg.example.com',
      POSTGRES_PASSWORD: 'pg-secret',
      POSTGRES_SSLMODE: 'require',
      CLICKHOUSE_HOST: 'ch.example.com',
      CLICKHOUSE_PEER_PORT: '9440',
    };
    for (const name of ECHODB_SERVICES) {
      const config = loadConfig({ env: environmentOf(loadCompose(remote).services[name]!), envFile: false });
      expect(config.postgres).toMatchObject({ host: 'pg.example.com', peerHost: 'pg.example.com', password: 'pg-secret', sslMode: 'require' });
      expect(config.clickhouse).toMatchObject({ host: 'ch.example.com', peerHost: 'ch.example.com', peerPort: 9440 });
    }
  });

  it('runs setup once, then two workers with every role and the consistency checker with the API', () => {
    expect(services['auto-setup']).toMatchObject({ command: ['setup'], restart: 'on-failure', healthcheck: { disable: true } });
    const roles = (name: string) => ({ command: services[name]!.command, healthPort: environmentOf(services[name]!).HEALTH_PORT });
    expect(roles('auto-mirror-worker-1')).toEqual({ command: ['run', '--roles', 'worker,listener,api'], healthPort: '8080' });
    expect(roles('auto-mirror-worker-2')).toEqual({ command: ['run', '--roles', 'worker,listener,api'], healthPort: '8081' });
    expect(roles('consistency-checker')).toEqual({ command: ['run', '--roles', 'api'], healthPort: '8090' });
    for (const name of ECHODB_SERVICES.slice(1)) {
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

  it('runs the source PostgreSQL with logical replication and room for the mirrors', () => {
    const command = [services.postgres!.command].flat().join(' ');
    expect(command).toContain('wal_level=logical');
    const setting = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(command)?.[1]);
    expect(setting('max_replication_slots')).toBeGreaterThanOrEqual(4);
    expect(setting('max_wal_senders')).toBeGreaterThanOrEqual(setting('max_replication_slots'));
  });

  it('passes `docker-compose config -q` (docker-compose 1.29, offline) with a .env made from .env.example, and with none', async () => {
    const version = await runDockerCompose(['version', '--short']);
    if (version.code === 'ENOENT') throw new Error(`docker-compose is not installed: ${INSTALL_HINT}`);
    const dir = mkdtempSync(join(tmpdir(), 'echodb-compose-'));
    try {
      for (const [file, text] of [['example.env', exampleText], ['empty.env', '']] as const) {
        writeFileSync(join(dir, file), text);
        const result = await runDockerCompose(['--env-file', join(dir, file), '-f', COMPOSE_FILE, 'config', '-q']);
        expect(result, file).toEqual({ code: 0, stdout: '', stderr: '' });
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
});
