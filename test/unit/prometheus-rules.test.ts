import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../lib/config.js';
import { PROMTOOL_MISSING, promtoolPath, RULES_FILE, RULES_TEST_FILE, runPromtool, seriesSelector, testRules } from '../support/promtool.js';

// EchoDB's alert rules (deploy/prometheus/echodb-rules.yml), their promtool unit tests (echodb-rules.test.yml) and
// their runbook (docs/alerts.md). promtool comes from Debian's prometheus package (scripts/install.sh).

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RUNBOOK = readFileSync(join(ROOT, 'docs/alerts.md'), 'utf8');
const RUNBOOK_URL = 'docs/alerts.md#';

/**
 * The metrics EchoDB serves that the rules may use (lib/metrics.ts). A fixed list: a rule on a name EchoDB does not
 * serve would never fire, and promtool cannot tell.
 */
const ECHODB_METRICS = new Set([
  'echodb_outbox_backlog_events',
  'echodb_outbox_oldest_pending_age_seconds',
  'echodb_is_leader',
  'echodb_circuit_breaker_state',
  'echodb_tables_mismatched',
  'echodb_mirror_wait_stalled',
  'echodb_mirror_wait_seconds',
  'echodb_unmirrored_tables',
  'echodb_tables_verification_errors',
  'echodb_mirror_last_operation_failed',
  'echodb_replication_slot_active',
  'echodb_replication_slot_retained_wal_bytes',
  'echodb_replication_slot_confirmed_lag_bytes',
  'echodb_replication_slot_safe_wal_bytes',
  'echodb_replication_slot_wal_status',
  'echodb_replication_slot_inactive_seconds',
  'echodb_replication_orphans',
  'echodb_replication_slots_readable',
]);
/** The values EchoDB gives its enumerated labels (lib/metrics.ts, lib/circuit-breaker.ts). */
const LABEL_VALUES: Record<string, string[]> = {
  state: ['closed', 'open', 'half_open'],
  wal_status: ['reserved', 'extended', 'unreserved', 'lost'],
  kind: ['slot', 'publication'],
  breaker: ['peerdb_api', 'postgres_connection'],
};

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}
interface ExpectedAlert {
  exp_labels?: Record<string, string>;
  exp_annotations?: Record<string, string>;
}
interface RuleTestFile {
  rule_files: string[];
  tests: {
    input_series: { series: string; values: string }[];
    alert_rule_test?: { eval_time: string; alertname: string; exp_alerts?: ExpectedAlert[] | null }[];
  }[];
}

const ruleFile = parseYaml(readFileSync(RULES_FILE, 'utf8')) as RuleFile;
const testFile = parseYaml(readFileSync(RULES_TEST_FILE, 'utf8')) as RuleTestFile;
const alerts = ruleFile.groups.flatMap((group) => group.rules);
const alert = (name: string): AlertRule => {
  const found = alerts.find((rule) => rule.alert === name);
  if (!found) throw new Error(`no alert ${name} in ${RULES_FILE}`);
  return found;
};

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset']);

/**
 * The metric names a PromQL expression reads: its identifiers, less functions and aggregations (followed by `(`),
 * keywords, label names (in matchers and grouping clauses), strings, numbers and durations.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/(?<![\w:])\d[\w.+-]*/g, ' ');
  const names: string[] = [];
  for (const match of bare.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const rest = bare.slice(match.index + match[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_KEYWORDS.has(match[0])) continue;
    names.push(match[0]);
  }
  return [...new Set(names)];
}

/** The PromQL an annotation runs through the `query` template function: the strings of its `{{ ... query ... }}` actions. */
function templateQueries(text: string): string[] {
  const actions = [...text.matchAll(/\{\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}\}/g)].map((match) => match[1]!);
  return actions
    .filter((action) => /\bquery\b/.test(action))
    .flatMap((action) => [...action.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((match) => match[1]!.replace(/\\"/g, '"').replace(/%q/g, '"x"')));
}

/** Label matchers in a PromQL expression: label, operator, value. */
function matchers(expr: string): { label: string; op: string; value: string }[] {
  return [...expr.matchAll(/\b(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map(([, label, op, value]) => ({ label: label!, op: op!, value: value! }));
}

/** A Prometheus duration (`30s`, `5m`, `1h30m`) in milliseconds. */
function durationMs(text: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) total += Number(amount) * units[unit!]!;
  return total;
}

/** The threshold an expression compares with: the number after `<op>` in `... <op> N`. */
function threshold(expr: string, op: '>' | '<'): number {
  const found = new RegExp(`\\)\\s*${op}\\s*(\\d+)`).exec(expr);
  if (!found) throw new Error(`no "${op} N" in ${expr}`);
  return Number(found[1]);
}

/** GitHub's anchor of a Markdown heading. */
const anchorOf = (heading: string) => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');
const runbookAnchors = new Set([...RUNBOOK.matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1]!)));

describe('the alert rules (deploy/prometheus/echodb-rules.yml)', () => {
  it('pass `promtool check rules`', async () => {
    const result = await runPromtool(['check', 'rules', RULES_FILE]);
    expect(result, result.stderr).toMatchObject({ code: 0 });
    expect(result.stdout).toContain(`SUCCESS: ${alerts.length} rules found`);
  });

  it('pass their unit tests: `promtool test rules deploy/prometheus/echodb-rules.test.yml`', async () => {
    const result = await runPromtool(['test', 'rules', RULES_TEST_FILE]);
    expect(result, `${result.stdout}\n${result.stderr}`).toMatchObject({ code: 0 });
    expect(result.stdout).toContain('SUCCESS');
  });

  it('are one group, echodb, of alerts only', () => {
    expect(ruleFile.groups.map((group) => group.name)).toEqual(['echodb']);
    expect(alerts.length).toBeGreaterThanOrEqual(13);
    for (const rule of alerts) expect(rule.alert, JSON.stringify(rule)).toMatch(/^EchoDb[A-Z]\w+$/);
    expect(new Set(alerts.map((rule) => rule.alert)).size).toBe(alerts.length);
  });

  it.each(alerts.map((rule) => [rule.alert, rule] as const))('%s has a severity, a summary with its labels, a description and its runbook section', (name, rule) => {
    expect(['warning', 'critical']).toContain(rule.labels?.severity);
    const { summary, description, runbook_url: runbookUrl } = rule.annotations ?? {};
    expect(summary).toMatch(/\{\{.*\$(labels|value).*\}\}/);
    expect(description?.length).toBeGreaterThan(200);
    // Something to run, not only words.
    expect(description).toMatch(/`(\.\/echodb|curl|temporal) [^`]+`/);
    expect(runbookUrl).toBe(`${RUNBOOK_URL}${name.toLowerCase()}`);
    expect([...runbookAnchors], `docs/alerts.md has no section ${name}`).toContain(name.toLowerCase());
  });

  it('read only metrics EchoDB serves, with label values it gives', () => {
    for (const rule of alerts) {
      const queries = [rule.expr, ...Object.values(rule.annotations ?? {}).flatMap(templateQueries)];
      for (const query of queries) {
        const names = metricNames(query);
        expect(names.length, `${rule.alert}: ${query}`).toBeGreaterThan(0);
        for (const name of names) expect(ECHODB_METRICS, `${rule.alert} reads ${name}`).toContain(name);
        for (const { label, op, value } of matchers(query)) {
          const allowed = LABEL_VALUES[label];
          if (!allowed || value === 'x') continue;
          const values = op.endsWith('~') ? value.split('|') : [value];
          for (const one of values) expect(allowed, `${rule.alert}: ${label}${op}"${value}"`).toContain(one);
        }
      }
    }
    // The extraction itself finds what it should, so that the check above cannot pass vacuously.
    expect(metricNames('sum by (job) (rate(foo_total{a="b"}[5m])) > 1e3 and on (job) up offset 5m or absent(bar)')).toEqual(['foo_total', 'up', 'bar']);
    expect(templateQueries(alert('EchoDbMirrorWaitStalled').annotations!.description!)).toHaveLength(1);
  });

  it("keep EchoDB's defaults: SLOT_WAL_WARN_MB, SLOT_INACTIVE_WARN_SECONDS, LEADER_ELECTION_TTL", () => {
    const config = loadConfig({ env: {}, envFile: false });
    expect(threshold(alert('EchoDbSlotWalRetainedHigh').expr, '>')).toBe(config.slots.walWarnBytes);
    expect(threshold(alert('EchoDbSlotInactive').expr, '>') * 1000).toBe(config.slots.inactiveWarnMs);
    expect(durationMs(alert('EchoDbNoLeader').for ?? '0s')).toBe(config.leaderElection.ttlMs);
    expect(alert('EchoDbNoLeader').expr).toContain('absent(echodb_is_leader)');
  });

  it('are each exercised by the unit tests: firing with every annotation, and silent', () => {
    expect(testFile.rule_files).toEqual(['echodb-rules.yml']);
    const cases = testFile.tests.flatMap((test) => test.alert_rule_test ?? []);
    for (const { alert: name } of alerts) {
      const ofAlert = cases.filter((c) => c.alertname === name);
      const firing = ofAlert.flatMap((c) => c.exp_alerts ?? []);
      expect(firing.length, `no test where ${name} fires`).toBeGreaterThan(0);
      for (const expected of firing) {
        expect(expected.exp_labels?.severity, name).toBe(alert(name).labels?.severity);
        expect(Object.keys(expected.exp_annotations ?? {}).sort(), name).toEqual(['description', 'runbook_url', 'summary']);
      }
      expect(ofAlert.some((c) => (c.exp_alerts ?? []).length === 0), `no test where ${name} stays silent`).toBe(true);
    }
    // Fed with the series EchoDB serves, under their names.
    for (const { series } of testFile.tests.flatMap((test) => test.input_series)) {
      expect(ECHODB_METRICS, series).toContain(series.replace(/\{.*$/, ''));
    }
    const known = new Set(alerts.map((rule) => rule.alert));
    for (const { alertname } of cases) expect(known, `the tests name an alert the rules do not have`).toContain(alertname);
  });
});

describe('testRules (test/support/promtool.ts)', () => {
  // A label value that needs escaping, as a scraped one may.
  const odd = `it's "quoted" \\ and back`;
  const labels = { job: 'echodb', instance: 'worker-1:8080', mirror: odd };
  const tests = (body: string) => `
evaluation_interval: 15s
rule_files: [somewhere/else.yml]
tests:
  - interval: 15s
    input_series:
      - series: '${seriesSelector('echodb_mirror_last_operation_failed', labels)}'
        values: '1x8'
${body}`;
  const firing = (severity: string) => tests(`
    promql_expr_test:
      - expr: ALERTS{alertname="EchoDbMirrorOperationFailed", alertstate="firing"}
        eval_time: 1m
        exp_samples:
          - labels: '${seriesSelector('ALERTS', { alertname: 'EchoDbMirrorOperationFailed', alertstate: 'firing', severity, job: 'echodb', mirror: odd })}'
            value: 1
`);

  it("runs promtool on the given tests against EchoDB's rules (whatever rule_files they name)", async () => {
    const result = await testRules(firing('warning'));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('SUCCESS');
  });

  it('reports a wrong expectation as a failure, with what promtool got', async () => {
    const result = await testRules(firing('critical'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('FAILED');
    expect(result.stderr).toContain('severity="warning"');
    // An expected alert without its annotations is wrong too (promtool compares them always).
    const bare = await testRules(tests(`
    alert_rule_test:
      - eval_time: 1m
        alertname: EchoDbMirrorOperationFailed
        exp_alerts:
          - exp_labels: { severity: warning, job: echodb, mirror: ${JSON.stringify(odd)} }
`));
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain('runbook_url=');
  });

  it('refuses a file that is not a YAML mapping, and names the install command when promtool is missing', async () => {
    await expect(testRules('- a list')).rejects.toThrow(/must be a YAML mapping/);
    expect(() => promtoolPath(['/nonexistent'])).toThrow(PROMTOOL_MISSING);
    expect(PROMTOOL_MISSING).toBe('promtool is missing: run bash scripts/install.sh (or apt-get install prometheus)');
  });
});
