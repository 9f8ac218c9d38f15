import type { Config } from '../lib/config.js';
import type { Logger } from '../lib/logger.js';
import type { SourceQuery } from '../lib/mirrored-tables.js';
import { readReplicationHealth, recordSlotObservations, slotWarnings } from '../lib/replication-slots.js';
import type { LeadershipState } from './leader-election.js';

export interface SlotMonitorOptions {
  config: Pick<Config, 'slots'>;
  query: SourceQuery;
  leadership: { state(): LeadershipState };
  logger: Logger;
}

/**
 * The leader's look at the replication slots of EchoDB's mirrors, every SLOT_CHECK_INTERVAL: records since when
 * each is inactive (echodb.slot_observations: PostgreSQL before 17 does not say), and logs a warning when a slot
 * passes SLOT_WAL_WARN_MB or stays inactive past SLOT_INACTIVE_WARN_SECONDS, or an orphan appears; one line again
 * when that is over. Followers do nothing, so each warning is logged once, by the leader.
 */
export class SlotMonitor {
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private readonly reported = new Set<string>();

  constructor(private readonly options: SlotMonitorOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      this.checking ??= this.check().finally(() => (this.checking = undefined));
    }, this.options.config.slots.checkIntervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.checking;
  }

  /** One look, when this replica leads. Never throws: a failure is logged once, until a look succeeds again. */
  async check(): Promise<void> {
    const { query, leadership, logger, config } = this.options;
    if (!leadership.state().isLeader) {
      this.reported.clear();
      return;
    }
    try {
      await recordSlotObservations(query);
      const health = await readReplicationHealth(query);
      if (this.reported.delete('unreadable')) logger.info('slots: the replication slots are readable again');
      for (const { level, fields, message } of slotWarnings(health, config.slots, this.reported)) logger[level](fields, message);
    } catch (error) {
      if (this.reported.has('unreadable')) return;
      this.reported.add('unreadable');
      logger.warn({ err: error }, `slots: cannot read the replication slots: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
