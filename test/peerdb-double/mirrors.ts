import type { Delays } from './delays.js';
import { invalidArgument, unimplemented } from './errors.js';
import type { CdcFlowConfigUpdate, ConnectionSettings, FlowConnectionConfigs, FlowStatus, Peer, TableMapping } from './messages.js';
import { ALLOW_NON_EMPTY_TABLES, envFlag } from './settings.js';
import { destinationShape, type SnapshotCopier } from './snapshot.js';

export interface Mirror {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
  /** As created, with the current table mappings and env. */
  readonly config: FlowConnectionConfigs;
  status: FlowStatus;
  rowsSynced: number;
  /** Why the mirror is STATUS_FAILED. */
  error: string | undefined;
  /** The replication slot exists from the end of setup until the mirror is dropped. */
  holdsSlot: boolean;
  /** A config update received while not paused: PeerDB keeps it and applies it at the next pause. */
  pendingUpdate: CdcFlowConfigUpdate | undefined;
  /** Bumped by a drop, so that work started before it leaves the mirror alone. */
  generation: number;
}

/** Checked by PeerDB only inside its workflow (SetupReplication), so a bad name fails the mirror, not the request. */
const VALID_MIRROR_NAME = /^[a-z_][a-z0-9_]*$/;

/** States in which PeerDB drops a config update instead of signalling it (flow/cmd/handler.go FlowStateChange). */
const NO_UPDATES: ReadonlySet<FlowStatus> = new Set<FlowStatus>([
  'STATUS_TERMINATING',
  'STATUS_TERMINATED',
  'STATUS_FAILED',
  'STATUS_COMPLETED',
]);

export interface MirrorsOptions {
  peers: ReadonlyMap<string, Peer>;
  copier: SnapshotCopier;
  delays: Delays;
  transitionMs: number;
  isStuck(): boolean;
}

/**
 * The mirrors and their life cycle, after PeerDB's CDCFlowWorkflow (flow/workflows/cdc_flow.go) without the CDC:
 * SETUP -> SNAPSHOT -> RUNNING, RUNNING -> PAUSING -> PAUSED, PAUSED -> (SNAPSHOT for added tables, MODIFYING for
 * removed ones) -> RUNNING, any -> TERMINATING -> gone. Every asynchronous step waits transitionMs, longer while
 * the `stuck` knob is set.
 */
export class Mirrors {
  private readonly live = new Map<string, Mirror>();
  private readonly everCreated = new Set<string>();
  private readonly work = new Set<Promise<void>>();
  private lastId = 0;
  private closed = false;

  constructor(private readonly options: MirrorsOptions) {}

  get(name: string): Mirror | undefined {
    return this.live.get(name);
  }

  /** The mirrors not yet dropped, oldest first. */
  list(): Mirror[] {
    return [...this.live.values()];
  }

  /** Every mirror name seen, dropped ones included, sorted: PeerDB lists names from its log table, which keeps them. */
  names(): string[] {
    return [...this.everCreated].sort();
  }

  create(config: FlowConnectionConfigs): Mirror {
    const mirror: Mirror = {
      id: String(++this.lastId),
      name: config.flowJobName,
      createdAt: new Date(),
      config,
      status: 'STATUS_SETUP',
      rowsSynced: 0,
      error: undefined,
      holdsSlot: false,
      pendingUpdate: undefined,
      generation: 0,
    };
    this.live.set(mirror.name, mirror);
    this.everCreated.add(mirror.name);
    this.run(mirror, (isCurrent) => this.setUp(mirror, isCurrent));
    return mirror;
  }

  /** FlowStateChange: delivers a config update (applied now when paused, kept for later otherwise), then acts on the state. */
  changeState(mirror: Mirror, requested: FlowStatus, update: CdcFlowConfigUpdate | undefined): void {
    const current = mirror.status;
    if (requested !== current) {
      if (requested === 'STATUS_RESYNC') throw unimplemented('resync is not modelled by the PeerDB Flow API test double');
      if (!['STATUS_PAUSED', 'STATUS_RUNNING', 'STATUS_TERMINATING', 'STATUS_TERMINATED'].includes(requested)) {
        throw invalidArgument(`illegal state change requested: ${requested}, current state is: ${current}`);
      }
    }
    let resumedByUpdate = false;
    if (update && !NO_UPDATES.has(current)) {
      if (current === 'STATUS_PAUSED') {
        this.applyUpdate(mirror, update);
        resumedByUpdate = true;
      } else {
        mirror.pendingUpdate = update;
      }
    }
    if (requested === current) return;
    if (requested === 'STATUS_PAUSED') {
      if (current === 'STATUS_RUNNING') this.pause(mirror);
    } else if (requested === 'STATUS_RUNNING') {
      if (current === 'STATUS_PAUSED' && !resumedByUpdate) mirror.status = 'STATUS_RUNNING';
    } else if (current !== 'STATUS_TERMINATING' && current !== 'STATUS_TERMINATED') {
      this.drop(mirror);
    }
  }

  /** Stops all work: pending steps end (the owner closes the delays first), copies stop after their current batch. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.work]);
  }

  private async setUp(mirror: Mirror, isCurrent: () => boolean): Promise<void> {
    if (!(await this.step(isCurrent))) return;
    if (!VALID_MIRROR_NAME.test(mirror.name)) {
      throw new Error(`invalid flow job name: \`${mirror.name}\`, it should be ^[a-z_][a-z0-9_]*$`);
    }
    mirror.holdsSlot = true;
    const { source, database } = this.endpoints(mirror);
    const tables = await this.options.copier.setUpTables(
      source,
      database,
      mirror.config.tableMappings,
      destinationShape(mirror.config),
    );
    if (!isCurrent()) return;
    if (mirror.config.doInitialSnapshot) {
      mirror.status = 'STATUS_SNAPSHOT';
      await this.options.copier.copyRows(source, tables, this.progress(mirror, isCurrent));
      if (!(await this.step(isCurrent))) return;
    }
    mirror.status = 'STATUS_RUNNING';
  }

  private pause(mirror: Mirror): void {
    mirror.status = 'STATUS_PAUSING';
    this.run(mirror, async (isCurrent) => {
      if (!(await this.step(isCurrent))) return;
      mirror.status = 'STATUS_PAUSED';
      const pending = mirror.pendingUpdate;
      if (pending) {
        mirror.pendingUpdate = undefined;
        this.applyUpdate(mirror, pending);
      }
    });
  }

  /**
   * PeerDB's processCDCFlowConfigUpdate on a paused mirror, which always resumes it. Added tables are ignored
   * when one of them is already mirrored (by source, or by destination unless non-empty tables are allowed).
   */
  private applyUpdate(mirror: Mirror, update: CdcFlowConfigUpdate): void {
    const { config } = mirror;
    Object.assign(config.env, update.updatedEnv);
    if (update.batchSize > 0) config.maxBatchSize = update.batchSize;
    if (update.idleTimeout !== '0') config.idleTimeoutSeconds = update.idleTimeout;
    const additions = this.overlaps(config, update.additionalTables) ? [] : update.additionalTables;
    const removed = new Set(update.removedTables.map((mapping) => mapping.sourceTableIdentifier));
    if (additions.length === 0 && removed.size === 0) {
      mirror.status = 'STATUS_RUNNING';
      return;
    }
    this.run(mirror, async (isCurrent) => {
      if (additions.length > 0) {
        mirror.status = 'STATUS_SNAPSHOT';
        config.tableMappings.push(...additions);
        if (!(await this.step(isCurrent))) return;
        const { source, database } = this.endpoints(mirror);
        const tables = await this.options.copier.setUpTables(source, database, additions, destinationShape(config));
        if (!update.skipInitialSnapshotForTableAdditions && isCurrent()) {
          await this.options.copier.copyRows(source, tables, this.progress(mirror, isCurrent));
        }
        if (!isCurrent()) return;
      }
      if (removed.size > 0) {
        mirror.status = 'STATUS_MODIFYING';
        const kept = config.tableMappings.filter((mapping) => !removed.has(mapping.sourceTableIdentifier));
        config.tableMappings.splice(0, config.tableMappings.length, ...kept);
        if (!(await this.step(isCurrent))) return;
      }
      mirror.status = 'STATUS_RUNNING';
    });
  }

  /** Drops the mirror after one step: its name is free again and its slot released; destination tables stay. */
  private drop(mirror: Mirror): void {
    mirror.generation += 1;
    mirror.status = 'STATUS_TERMINATING';
    mirror.pendingUpdate = undefined;
    this.run(mirror, async (isCurrent) => {
      if (!(await this.step(isCurrent))) return;
      mirror.holdsSlot = false;
      this.live.delete(mirror.name);
    });
  }

  private overlaps(config: FlowConnectionConfigs, additions: TableMapping[]): boolean {
    const checkDestinations = !envFlag(config.env, ALLOW_NON_EMPTY_TABLES);
    return additions.some((addition) =>
      config.tableMappings.some(
        (mapping) =>
          mapping.sourceTableIdentifier === addition.sourceTableIdentifier ||
          (checkDestinations && mapping.destinationTableIdentifier === addition.destinationTableIdentifier),
      ),
    );
  }

  private endpoints(mirror: Mirror): { source: ConnectionSettings; database: string } {
    const source = this.options.peers.get(mirror.config.sourceName);
    const destination = this.options.peers.get(mirror.config.destinationName);
    if (source?.type !== 'POSTGRES' || destination?.type !== 'CLICKHOUSE') {
      throw new Error(`peers ${mirror.config.sourceName} and ${mirror.config.destinationName} are no longer POSTGRES and CLICKHOUSE`);
    }
    return { source: source.postgresConfig, database: destination.clickhouseConfig.database };
  }

  private progress(mirror: Mirror, isCurrent: () => boolean) {
    return {
      isCurrent,
      onRows: (count: number) => {
        if (isCurrent()) mirror.rowsSynced += count;
      },
    };
  }

  /** Waits one transition (and on, while stuck); false when the mirror was dropped meanwhile or the double closed. */
  private async step(isCurrent: () => boolean): Promise<boolean> {
    do {
      if (!(await this.options.delays.wait(this.options.transitionMs))) return false;
    } while (this.options.isStuck());
    return isCurrent();
  }

  /** Runs asynchronous work for the mirror; an error in it fails the mirror, unless the mirror has moved on. */
  private run(mirror: Mirror, work: (isCurrent: () => boolean) => Promise<void>): void {
    const generation = mirror.generation;
    const isCurrent = () => !this.closed && mirror.generation === generation;
    const done: Promise<void> = work(isCurrent)
      .catch((error: unknown) => {
        if (!isCurrent()) return;
        mirror.status = 'STATUS_FAILED';
        mirror.error = error instanceof Error ? error.message : String(error);
      })
      .finally(() => this.work.delete(done));
    this.work.add(done);
  }
}
