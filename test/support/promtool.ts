/**
 * promtool, Prometheus's own checker, for EchoDB's alert rules (deploy/prometheus/echodb-rules.yml, runbook
 * docs/alerts.md). Debian's `prometheus` package provides /usr/bin/promtool; scripts/install.sh installs it. Nothing
 * here skips: without promtool the caller fails, naming the install command.
 *
 * For a test that feeds its own series to the rules (for example series scraped from a running EchoDB), the
 * simplest check is on ALERTS, the series Prometheus writes for each pending or firing alert: it has the alert's
 * labels and none of its annotations.
 *
 *   const series = seriesSelector('echodb_tables_mismatched', { job: 'echodb', instance: 'a:8080' });
 *   const result = await testRules(`
 *   evaluation_interval: 15s
 *   tests:
 *     - interval: 15s
 *       input_series:
 *         - series: '${series}'
 *           values: '2x10'
 *       promql_expr_test:
 *         - expr: ALERTS{alertname="EchoDbTablesMismatched", alertstate="firing"}
 *           eval_time: 1m
 *           exp_samples:
 *             - labels: '${seriesSelector('ALERTS', { alertname: 'EchoDbTablesMismatched', alertstate: 'firing', severity: 'warning', job: 'echodb' })}'
 *               value: 1
 *   `);
 *   expect(result.code, result.stderr).toBe(0);
 *
 * Name the alert in the ALERTS selector: with only some of EchoDB's series given, other alerts may fire too
 * (EchoDbNoLeader, for one, fires when no echodb_is_leader series is there at all).
 *
 * alert_rule_test works too, but promtool (2.42, Debian 12's) compares annotations in every case: an exp_alerts
 * entry without exp_annotations expects an alert with none, and fails against EchoDB's alerts, which all have
 * some. Give the rendered annotations there (as deploy/prometheus/echodb-rules.test.yml does), or check ALERTS.
 *
 * A promtool unit test file is documented at https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/;
 * deploy/prometheus/echodb-rules.test.yml is a complete one.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMap, parseDocument } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The absolute path of EchoDB's alert rules. */
export const RULES_FILE = join(ROOT, 'deploy/prometheus/echodb-rules.yml');
/** The absolute path of their unit tests (its rule_files names echodb-rules.yml beside it). */
export const RULES_TEST_FILE = join(ROOT, 'deploy/prometheus/echodb-rules.test.yml');

export const PROMTOOL_MISSING = 'promtool is missing: run bash scripts/install.sh (or apt-get install prometheus)';

/** What a promtool run gave: its exit status (0: success), and what it printed. */
export interface PromtoolResult {
  /** promtool's exit status; -1 when it was killed (timed out: the reason is at the end of stderr). */
  code: number;
  stdout: string;
  /** promtool prints a failed unit test's expected and actual alerts here (`FAILED:`). */
  stderr: string;
}

/**
 * The promtool executable: the first in `dirs` (by default PATH's directories, then /usr/bin and /usr/local/bin).
 * Throws PROMTOOL_MISSING when there is none.
 */
export function promtoolPath(dirs: readonly string[] = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin']): string {
  for (const dir of dirs) {
    const candidate = join(dir, 'promtool');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(PROMTOOL_MISSING);
}

/** Runs `promtool <args>`; never rejects on promtool's own failure (see `code`), only when promtool is missing. */
export function runPromtool(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<PromtoolResult> {
  const promtool = promtoolPath();
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve) => {
    execFile(promtool, args, { cwd: options.cwd ?? ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) return resolve({ code: 0, stdout, stderr });
      const status = (error as NodeJS.ErrnoException & { code?: number | string }).code;
      if (typeof status === 'number') return resolve({ code: status, stdout, stderr });
      resolve({ code: -1, stdout, stderr: `${stderr}\n(promtool ${error.killed ? `killed after ${timeoutMs} ms` : `failed: ${error.message}`})` });
    });
  });
}

export interface TestRulesOptions {
  /** The rule files to test, absolute paths (default: [RULES_FILE], EchoDB's rules). */
  ruleFiles?: string[];
  /** How long promtool may take (default 60 s). */
  timeoutMs?: number;
}

/**
 * Runs `promtool test rules` on a unit test file given as YAML text (evaluation_interval, tests: input_series,
 * alert_rule_test, promql_expr_test), against EchoDB's rules. Its `rule_files` is set to the absolute path of
 * deploy/prometheus/echodb-rules.yml (or `options.ruleFiles`), replacing any it has; the file is written to a
 * temporary directory, removed afterwards. Resolves with promtool's exit status and output: code 0 when every
 * expectation held; otherwise promtool prints, on stderr, each failed expectation with what it got.
 */
export async function testRules(testFileYaml: string, options: TestRulesOptions = {}): Promise<PromtoolResult> {
  const document = parseDocument(testFileYaml);
  if (document.errors.length > 0) throw new Error(`testRules: the test file is not valid YAML: ${document.errors[0]!.message}`);
  if (!isMap(document.contents)) {
    throw new Error('testRules: the test file must be a YAML mapping (evaluation_interval, tests, ...)');
  }
  document.set('rule_files', options.ruleFiles ?? [RULES_FILE]);
  const dir = mkdtempSync(join(tmpdir(), 'echodb-promtool-'));
  try {
    const file = join(dir, 'rules.test.yml');
    writeFileSync(file, document.toString());
    return await runPromtool(['test', 'rules', file], { cwd: dir, ...(options.timeoutMs !== undefined && { timeoutMs: options.timeoutMs }) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A series as promtool's input_series writes it, `name{label="value",...}`, with the label values escaped as
 * PromQL strings, so that values holding quotes or backslashes (as scraped ones may) stay intact. It holds no `'`
 * (written \u0027), so it may go between single quotes in the YAML: `series: '${seriesSelector(...)}'`.
 */
export function seriesSelector(name: string, labels: Record<string, string> = {}): string {
  const quoted = (value: string) => JSON.stringify(value).replaceAll("'", '\\u0027');
  const pairs = Object.entries(labels).map(([label, value]) => `${label}=${quoted(value)}`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`;
}
