// Every workflow the worker runs. This file is the entry point of the workflow bundle.
export { mirrorWorkflow } from './mirror-workflow.js';
export { verifyTableWorkflow } from './verify-workflow.js';
export { reconcileWorkflow } from './reconcile-workflow.js';
export { verifyAllWorkflow } from './verify-all-workflow.js';
export { cleanupWorkflow } from './cleanup-workflow.js';
