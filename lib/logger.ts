import { pino, type Logger } from 'pino';
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import type { Config } from './config.js';

export type { Logger };

/**
 * EchoDB's one logger: a JSON object per line on stdout, with this replica's worker id on every line and, where
 * there is one, the workflow id (`workflow_id`) and the outbox event id (`event_id`). LOG_LEVEL sets the level;
 * with LOG_FILE, every line is appended to that file too (its directory created).
 */
export function createLogger(config: Pick<Config, 'workerId' | 'logLevel' | 'logFile'>): Logger {
  const options = {
    level: config.logLevel,
    base: { worker_id: config.workerId },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (config.logFile === undefined) return pino(options);
  const file = pino.destination({ dest: config.logFile, append: true, mkdir: true, sync: true });
  return pino(options, pino.multistream([{ stream: process.stdout, level: 'trace' }, { stream: file, level: 'trace' }]));
}

/** The names Temporal's SDK gives the ids it puts on a line, as EchoDB's own lines spell them. */
const RENAMED: Record<string, string> = {
  workflowId: 'workflow_id',
  runId: 'run_id',
  workflowType: 'workflow_type',
  activityType: 'activity_type',
  taskQueue: 'task_queue',
};

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Temporal's runtime logger writing through pino: the SDK's own lines and those of workflow and activity code
 * (which carry their workflow id) come out like every other line.
 */
export function temporalLogger(logger: Logger): TemporalLogger {
  const log = (level: LogLevel, message: string, meta: LogMetadata = {}) => {
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(meta)) fields[RENAMED[key] ?? key] = value;
    logger[LEVELS[level]](fields, message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}
