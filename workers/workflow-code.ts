import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';

/** Running compiled (dist/, .js) or from the TypeScript source (tests, ./echodb). */
const extension = path.extname(fileURLToPath(import.meta.url));
/** Where `npm run build` writes the workflow bundle; a compiled worker uses it when present (production). */
export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
export const WORKFLOWS_ENTRY = fileURLToPath(new URL(`../workflows/index${extension}`, import.meta.url));

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Where bundles made from the source are kept, one per version of the source. */
const SOURCE_BUNDLES = path.join(ROOT, 'node_modules', '.cache', 'echodb-workflows');
/** Directories no workflow code comes from. */
const NOT_WORKFLOW_SOURCE = new Set(['node_modules', 'dist', 'test', 'bench', 'scripts', 'docs', 'deploy']);

export type WorkflowCode = Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;

/**
 * The workflow code for a Worker (a real one or a replayer): the ahead-of-time bundle when running compiled and
 * it exists; from the source, a bundle made once per version of the source (every worker the tests start, and
 * each `./echodb run`, would otherwise spend a second or two in webpack).
 */
export async function workflowCode(): Promise<WorkflowCode> {
  if (extension === '.js') {
    return fs.existsSync(WORKFLOW_BUNDLE) ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } } : { workflowsPath: WORKFLOWS_ENTRY };
  }
  const version = sourceVersion();
  const codePath = path.join(SOURCE_BUNDLES, `${version}.js`);
  if (fs.existsSync(codePath)) return { workflowBundle: { codePath } };
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_ENTRY });
  try {
    fs.mkdirSync(SOURCE_BUNDLES, { recursive: true });
    // Other versions' bundles go; this version's may be in use by a worker starting at the same moment.
    for (const old of fs.readdirSync(SOURCE_BUNDLES)) {
      if (!old.startsWith(version)) fs.rmSync(path.join(SOURCE_BUNDLES, old), { force: true });
    }
    // Written aside and renamed: a worker starting at the same moment reads a whole bundle or none.
    const partial = `${codePath}.${process.pid}.partial`;
    fs.writeFileSync(partial, code);
    fs.renameSync(partial, codePath);
  } catch {
    // A read-only install: this process keeps the bundle in memory.
    return { workflowBundle: { code } };
  }
  return { workflowBundle: { codePath } };
}

/** A hash of every TypeScript file workflow code could come from, the installed packages' versions and tsconfig. */
function sourceVersion(): string {
  const hash = crypto.createHash('sha256');
  for (const file of ['package-lock.json', 'tsconfig.json']) hash.update(fs.readFileSync(path.join(ROOT, file)));
  const visit = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.') && !(dir === ROOT && NOT_WORKFLOW_SOURCE.has(entry.name))) visit(full);
      } else if (entry.name.endsWith('.ts')) {
        hash.update(path.relative(ROOT, full)).update('\0').update(fs.readFileSync(full)).update('\0');
      }
    }
  };
  visit(ROOT);
  return hash.digest('hex').slice(0, 32);
}
