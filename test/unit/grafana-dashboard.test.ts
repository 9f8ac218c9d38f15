import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { createMetrics } from '../../lib/metrics.js';

// deploy/grafana/echodb.json, its provisioning and the monitoring profile of docker-compose.yml, checked statically:
// no Grafana can run here (no Docker engine, and no registry this project reaches ships a Grafana server).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/**
 * The Grafana release the monitoring profile runs, and the dashboard schemaVersion that release writes (so it
 * loads the dashboard without migrating it). 42 for 12.4.10: `defaultDashboard.schemaVersion` of @grafana/schema
 * 12.4.10 (dist/esm/raw/dashboard/x/types.gen.mjs), the package published from that release, and LATEST_VERSION of
 * Grafana's dashboard migrations (apps/dashboard/pkg/migration/schemaversion/migrations.go). A Grafana upgrade in
 * docker-compose.yml must look again.
 */
const GRAFANA = { image: 'grafana/grafana:12.4.10', schemaVersion: 42 };

/**
 * Panel types Grafana 12.4 ships (public/app/plugins/panel/<type>/plugin.json), those this dashboard may use; `row`
 * is the dashboard's own.
 */
const PANEL_TYPES = new Set([
  'row', 'timeseries', 'stat', 'gauge', 'bargauge', 'table', 'text', 'state-timeline', 'status-history', 'heatmap',
  'histogram', 'barchart', 'piechart', 'alertlist',
]);
/** Panel types that query no data source: they need no targets and no `datasource`. */
const QUERYLESS = new Set(['row', 'text', 'alertlist']);

/** The series each panel's PromQL may read besides lib/metrics.ts's registry. */
const OTHER_SERIES: Record<string, string> = {
  up: "Prometheus's own, one per scrape target (job echodb of deploy/prometheus/prometheus.yml)",
};

/** The metrics the dashboard must show, each in at least one panel. */
const SHOWN = [
  'echodb_replication_slot_retained_wal_bytes', 'echodb_replication_slot_confirmed_lag_bytes',
  'echodb_replication_slot_active', 'echodb_replication_slot_inactive_seconds', 'echodb_replication_slot_wal_status',
  'echodb_replication_slot_safe_wal_bytes', 'echodb_replication_orphans', 'echodb_replication_slots_readable',
  'echodb_outbox_backlog_events', 'echodb_outbox_oldest_pending_age_seconds',
  'echodb_ddl_dispatch_latency_seconds_bucket', 'echodb_events_dispatched_total',
  'echodb_is_leader', 'echodb_leadership_changes_total', 'echodb_circuit_breaker_state',
  'echodb_mirror_operations', 'echodb_mirror_last_operation_failed', 'echodb_mirror_wait_seconds', 'echodb_mirror_wait_stalled',
  'echodb_tables_mismatched', 'echodb_tables_verification_errors', 'echodb_verifications', 'echodb_mirrored_tables',
  'echodb_unmirrored_tables',
  'echodb_process_resident_memory_bytes', 'echodb_process_cpu_seconds_total', 'echodb_nodejs_eventloop_lag_seconds',
];

interface DataSourceRef { type?: string; uid?: string }
interface Target { refId?: string; expr?: string; datasource?: DataSourceRef }
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: DataSourceRef | null;
  targets?: Target[];
  panels?: Panel[];
  collapsed?: boolean;
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: DataSourceRef;
  current?: { value?: unknown };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}
interface ComposeService {
  image?: string;
  profiles?: string[];
  volumes?: string[];
  ports?: string[];
  command?: string | string[];
  environment?: Record<string, string>;
}

const dashboardText = read('deploy/grafana/echodb.json');
const dashboard = JSON.parse(dashboardText) as Dashboard;
/** Every panel, those inside collapsed rows too. */
const panels = dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
const variableRef = { type: 'prometheus', uid: '${datasource}' };

const services = (parseYaml(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> }).services;
const prometheus = services.prometheus!;
const grafana = services.grafana!;
/** A compose value with every ${NAME:-default} at its default, as with an empty .env. */
const withDefaults = (value: string) => value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_match, fallback?: string) => fallback ?? '');
/** Where a service mounts a file or directory of the repository: host path (without ./) -> container path. */
const mounts = (service: ComposeService) => Object.fromEntries((service.volumes ?? [])
  .filter((volume) => volume.startsWith('./'))
  .map((volume) => [volume.split(':')[0]!.slice(2), volume.split(':')[1]!]));
/** The container port a service publishes, first mapping. */
const containerPort = (service: ComposeService) => Number(withDefaults(service.ports![0]!).replace(/\/\w+$/, '').split(':').at(-1));

const yamlFiles = (dir: string) => readdirSync(join(ROOT, dir)).filter((file) => /\.ya?ml$/.test(file)).map((file) => join(dir, file));

const PromQL = {
  KEYWORDS: new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']),
  /**
   * The metric names a PromQL expression reads: identifiers left once strings, label matchers, ranges and the
   * clauses naming labels (by, without, on, ignoring, group_left, group_right) are taken out, that are neither
   * functions or aggregations (followed by a parenthesis) nor keywords.
   */
  metricNames(expr: string): string[] {
    const bare = expr
      .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
      .replace(/\{[^}]*\}/g, '{}')
      .replace(/\[[^\]]*\]/g, '[]')
      .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
    return [...bare.matchAll(/(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)]
      .map((match) => match[1]!)
      .filter((name) => !PromQL.KEYWORDS.has(name.toLowerCase()));
  },
};

/** The PromQL of every query: each target's, and each query variable's (label_values(<selector>, <label>)). */
function queries(): { where: string; expr: string }[] {
  const fromPanels = panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ where: `panel ${panel.id} "${panel.title}" ${target.refId}`, expr: target.expr ?? '' })));
  const fromVariables = dashboard.templating.list.filter((variable) => variable.type === 'query').map((variable) => {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query ?? '';
    const selector = /^label_values\((.+),\s*\w+\)$/.exec(query)?.[1] ?? /^query_result\((.+)\)$/.exec(query)?.[1] ?? query;
    return { where: `variable ${variable.name}`, expr: selector };
  });
  return [...fromPanels, ...fromVariables];
}

/** The series names lib/metrics.ts's registry exports: histograms as _bucket, _sum and _count. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const { name, type } of await createMetrics().registry.getMetricsAsJSON()) {
    const kind = String(type);
    if (kind === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    else if (kind === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(`${name}${suffix}`);
    else names.add(name);
  }
  return names;
}

describe('PromQL.metricNames', () => {
  it('finds the metrics and leaves out functions, labels, keywords, ranges, strings and numbers', () => {
    expect(PromQL.metricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~"$m", y="b c"}[$__rate_interval])))')).toEqual(['a_bucket']);
    expect(PromQL.metricNames('count(max by (mirror) (b) == 1) or vector(0)')).toEqual(['b']);
    expect(PromQL.metricNames('c + 2 * max without (instance, wal_status) (d{wal_status="lost"}) offset 5m > bool 1e3')).toEqual(['c', 'd']);
    expect(PromQL.metricNames('sum(rate(e[5m])) / on (job) group_left (x) f')).toEqual(['e', 'f']);
  });
});

describe('deploy/grafana/echodb.json', () => {
  it(`is a dashboard of uid echodb, titled EchoDB, at the schemaVersion ${GRAFANA.image} writes`, () => {
    expect(dashboard).toMatchObject({ uid: 'echodb', title: 'EchoDB' });
    expect(withDefaults(grafana.image!)).toBe(GRAFANA.image);
    expect(dashboard.schemaVersion).toBe(GRAFANA.schemaVersion);
    expect(dashboardText.endsWith('\n')).toBe(true);
  });

  it("has a datasource variable of type prometheus, set to the provisioned data source, which every query variable uses", () => {
    const variable = dashboard.templating.list.find((candidate) => candidate.name === 'datasource');
    expect(variable).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variable!.current?.value).toBe(provisionedDataSource().uid);
    for (const other of dashboard.templating.list.filter((candidate) => candidate.type === 'query')) {
      expect(other.datasource, other.name).toEqual(variableRef);
    }
  });

  it('gives every panel a unique id, a type Grafana ships and a place within the 24 columns, overlapping none', () => {
    const ids = panels.map((panel) => panel.id);
    expect(ids.every((id) => Number.isInteger(id) && id! > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(panels.filter((panel) => !PANEL_TYPES.has(panel.type ?? '')).map((panel) => `${panel.id} ${panel.type}`)).toEqual([]);
    const cells = new Map<string, number>();
    for (const panel of dashboard.panels) {
      const { x, y, w, h } = panel.gridPos!;
      expect([x, y, w, h].every(Number.isInteger), `panel ${panel.id}`).toBe(true);
      expect(x >= 0 && y >= 0 && w >= 1 && h >= 1 && x + w <= 24, `panel ${panel.id}: ${JSON.stringify(panel.gridPos)}`).toBe(true);
      for (let column = x; column < x + w; column++) {
        for (let row = y; row < y + h; row++) {
          const taken = cells.get(`${column},${row}`);
          expect(taken, `panel ${panel.id} overlaps panel ${taken}`).toBeUndefined();
          cells.set(`${column},${row}`, panel.id!);
        }
      }
    }
  });

  it('queries, in each panel and each of its targets, the data source of the datasource variable', () => {
    for (const panel of panels) {
      if (QUERYLESS.has(panel.type!)) {
        expect(panel.targets ?? [], `panel ${panel.id}`).toEqual([]);
        continue;
      }
      expect(panel.datasource, `panel ${panel.id}`).toEqual(variableRef);
      expect(panel.targets?.length, `panel ${panel.id}`).toBeGreaterThan(0);
      for (const target of panel.targets!) {
        expect(target.datasource, `panel ${panel.id} ${target.refId}`).toEqual(variableRef);
        expect(target.expr?.trim(), `panel ${panel.id} ${target.refId}`).toBeTruthy();
      }
      expect(new Set(panel.targets!.map((target) => target.refId)).size, `panel ${panel.id}`).toBe(panel.targets!.length);
    }
    expect(panels.some((panel) => panel.type === 'alertlist')).toBe(true);
  });

  it('reads only series EchoDB exports (lib/metrics.ts) and Prometheus writes, and shows every metric it should', async () => {
    const exported = await exportedNames();
    // Sanity: the registry is read, with prom-client's default metrics under echodb_.
    expect(exported).toContain('echodb_ddl_dispatch_latency_seconds_bucket');
    expect(exported).toContain('echodb_process_cpu_seconds_total');
    const unknown: string[] = [];
    const shown = new Set<string>();
    for (const { where, expr } of queries()) {
      const names = PromQL.metricNames(expr);
      expect(names.length, `${where}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) {
        shown.add(name);
        if (!exported.has(name) && OTHER_SERIES[name] === undefined) unknown.push(`${where}: ${name}`);
      }
    }
    expect(unknown).toEqual([]);
    expect(SHOWN.filter((name) => !shown.has(name))).toEqual([]);
  });

  it("counts the targets Prometheus scrapes by the job name of deploy/prometheus/prometheus.yml", () => {
    const jobs = prometheusConfig().scrape_configs.map((config) => config.job_name);
    const used = queries().flatMap(({ expr }) => [...expr.matchAll(/\bjob="([^"]+)"/g)].map((match) => match[1]!));
    expect(used.length).toBeGreaterThan(0);
    for (const job of used) expect(jobs).toContain(job);
  });
});

interface DataSource { name: string; uid: string; type: string; url: string; access?: string; isDefault?: boolean; jsonData?: Record<string, unknown> }
interface DashboardProvider { name: string; type: string; folder?: string; options: { path: string } }
interface PrometheusConfig {
  global?: { scrape_interval?: string };
  rule_files?: string[];
  scrape_configs: {
    job_name: string;
    metrics_path?: string;
    authorization?: { type?: string; credentials_file?: string };
    static_configs?: { targets: string[] }[];
  }[];
}

function provisionedDataSource(): DataSource {
  const sources = yamlFiles('deploy/grafana/provisioning/datasources')
    .flatMap((file) => (parseYaml(read(file)) as { apiVersion: number; datasources: DataSource[] }).datasources);
  expect(sources).toHaveLength(1);
  return sources[0]!;
}

function prometheusConfig(): PrometheusConfig {
  return parseYaml(read('deploy/prometheus/prometheus.yml')) as PrometheusConfig;
}

describe("Grafana's provisioning (deploy/grafana/provisioning)", () => {
  it("mounts the data source and dashboard provisioning where Grafana reads them, and nothing else over the image's", () => {
    expect(mounts(grafana)).toMatchObject({
      'deploy/grafana/provisioning/datasources': '/etc/grafana/provisioning/datasources',
      'deploy/grafana/provisioning/dashboards': '/etc/grafana/provisioning/dashboards',
    });
    for (const file of [...yamlFiles('deploy/grafana/provisioning/datasources'), ...yamlFiles('deploy/grafana/provisioning/dashboards')]) {
      expect((parseYaml(read(file)) as { apiVersion: number }).apiVersion, file).toBe(1);
    }
  });

  it('provisions the stack\'s Prometheus under a fixed uid, as the default data source, with its scrape interval', () => {
    const source = provisionedDataSource();
    expect(source).toMatchObject({ type: 'prometheus', uid: 'echodb-prometheus', access: 'proxy', isDefault: true });
    // http://<service>:<port>: the compose service and the port Prometheus listens on inside the network.
    const url = new URL(source.url);
    expect(services[url.hostname], url.hostname).toBe(prometheus);
    expect(Number(url.port)).toBe(containerPort(prometheus));
    expect(source.jsonData?.timeInterval).toBe(prometheusConfig().global?.scrape_interval);
  });

  it('provisions deploy/grafana/echodb.json from the directory it is mounted in', () => {
    const providers = yamlFiles('deploy/grafana/provisioning/dashboards')
      .flatMap((file) => (parseYaml(read(file)) as { providers: DashboardProvider[] }).providers);
    expect(providers).toHaveLength(1);
    expect(providers[0]).toMatchObject({ type: 'file', folder: 'EchoDB' });
    const mounted = mounts(grafana)['deploy/grafana/echodb.json'];
    expect(mounted).toBe(`${providers[0]!.options.path}/echodb.json`);
    expect(grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(mounted);
  });
});

describe("Prometheus's configuration (deploy/prometheus/prometheus.yml)", () => {
  it('is the file the prometheus service mounts and runs, with the alert rules of deploy/prometheus/echodb-rules.yml', () => {
    const mounted = mounts(prometheus);
    const command = [prometheus.command].flat().join('\n');
    expect(command).toContain(`--config.file=${mounted['deploy/prometheus/prometheus.yml']}`);
    expect(prometheusConfig().rule_files).toEqual(['/etc/prometheus/echodb-rules.yml']);
    expect(mounted['deploy/prometheus/echodb-rules.yml']).toBe('/etc/prometheus/echodb-rules.yml');
  });

  it("scrapes /metrics/prometheus of every EchoDB service with the api role, at its HEALTH_PORT, with API_TOKEN", () => {
    const job = prometheusConfig().scrape_configs.find((config) => config.job_name === 'echodb')!;
    expect(job.metrics_path).toBe('/metrics/prometheus');
    const apis = Object.entries(services)
      .filter(([, service]) => /--roles\s+\S*\bapi\b/.test([service.command].flat().join(' ')))
      .map(([name, service]) => `${name}:${service.environment?.HEALTH_PORT}`);
    expect(apis).toHaveLength(3);
    expect(job.static_configs!.flatMap((config) => config.targets).sort()).toEqual(apis.sort());
    // The container writes API_TOKEN to the file the job sends as its bearer token.
    expect(job.authorization).toEqual({ type: 'Bearer', credentials_file: '/prometheus/echodb-api-token' });
    expect([prometheus.command].flat().join('\n')).toContain(`printf '%s' "$$API_TOKEN" > ${job.authorization!.credentials_file}`);
    expect(prometheus.environment?.API_TOKEN).toBe('${API_TOKEN:-}');
  });

  it('has the files it mounts', () => {
    for (const path of [...Object.keys(mounts(prometheus)), ...Object.keys(mounts(grafana))]) {
      expect(existsSync(join(ROOT, path)), path).toBe(true);
    }
  });
});
