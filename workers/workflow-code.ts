import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Running compiled (dist/, .js) or from the TypeScript source (tests, ./echodb). */
const extension = path.extname(fileURLToPath(import.meta.url));
/** Where `npm run build` writes the workflow bundle; a compiled worker uses it when present (production). */
export const WORKFLOW_BUNDLE = fileURLToPath(new URL('../workflow-bundle.js', import.meta.url));
export const WORKFLOWS_ENTRY = fileURLToPath(new URL(`../workflows/index${extension}`, import.meta.url));

/**
 * The workflow code for a Worker (a real one or a replayer): the ahead-of-time bundle when running compiled and
 * it exists, else the workflows entry, bundled on the spot.
 */
export function workflowCode(): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  return extension === '.js' && fs.existsSync(WORKFLOW_BUNDLE)
    ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
    : { workflowsPath: WORKFLOWS_ENTRY };
}
