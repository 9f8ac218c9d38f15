// Bundles the workflow code ahead of time (run by `npm run build`), so that a production worker starts without
// webpack. The worker picks the bundle up from dist/workflow-bundle.js.
import fs from 'node:fs';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE, WORKFLOWS_ENTRY } from './workflow-code.js';

const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_ENTRY });
fs.writeFileSync(WORKFLOW_BUNDLE, code);
console.log(`bundled the workflows into ${WORKFLOW_BUNDLE} (${Math.round(code.length / 1024)} KiB)`);
