// Every workflow the worker runs. This file is the entry point of the workflow bundle.
export { mirrorWorkflow } from './mirror-workflow.js';
export { verifyTableWorkflow } from './verify-workflow.js';
export { verifyTablesWorkflow } from './verify-tables-workflow.js';
export { reconcileWorkflow } from './reconcile-workflow.js';
export { verifyAllWorkflow } from './verify-all-workflow.js';
export { cleanupWorkflow } from './cleanup-workflow.js';
export { diffTableWorkflow } from './diff-workflow.js';
