import type { ClickHouseClient } from '@clickhouse/client';
import type pg from 'pg';
import type { Delays } from './delays.js';
import { alreadyExists, failedPrecondition, internal, invalidArgument, unimplemented } from './errors.js';
import type { CdcFlowConfigUpdate, ConnectionSettings, FlowConnectionConfigs, FlowStatus, Peer, TableMapping } from './messages.js';
import { PEERDB_RETRIES, retryDelayMs, type RetryPolicy } from './retry-policies.js';
import { ALLOW_NON_EMPTY_TABLES, envFlag } from './settings.js';
import { destinationShape, type DestinationTable, type SnapshotCopier } from './snapshot.js';
import {
  addTablesToPublication,
  createPublicationAndSlot,
  dropPublicationAndSlot,
  ensurePullability,
  removeTablesFromPublication,
  replicationNames,
} from './source-replication.js';
import type { SlotPulls } from './slot-pull.js';
import { connectToSource, parseTableIdentifier, type QualifiedTable } from './source-table.js';

/** One table's initial load, as PeerDB's InitialLoadSummary reports it (status snapshotStatus.clones). */
export interface Clone {
  source: string;
  destination: string;
  /** shared.ReplaceIllegalCharactersWithUnderscores(`clone_<mirror>_<source>_<run>`) (snapshot_flow.go cloneTable). */
  jobName: string;
  startedAt: Date;
  rows: number;
  done: boolean;
}

export interface Mirror {
  readonly id: string;
  readonly name: string;
  readonly createdAt: Date;
  /** As created, with the table mappings of the workflow's state (additions in progress included) and env. */
  readonly config: FlowConnectionConfigs;
  /**
   * The mappings in PeerDB's catalog (flows.config_proto): the create's, then each finished edit's
   * (cdc_flow.go syncStateToConfigProtoInCatalog). cancel_table_addition starts over from these.
   */
  catalogMappings: TableMapping[];
  status: FlowStatus;
  rowsSynced: number;
  clones: Clone[];
  /** Why the mirror is STATUS_FAILED. */
  error: string | undefined;
  /** The last error of the step PeerDB is retrying, if any (PeerDB logs it to peerdb_stats.flow_errors). */
  retrying: string | undefined;
  /** The replication slot and publication exist in the source database. */
  holdsSlot: boolean;
  /** A config update received while RUNNING or PAUSING: PeerDB keeps it in its state and applies it at the next pause. */
  pendingUpdate: CdcFlowConfigUpdate | undefined;
  /** Bumped by a drop or a cancellation, so that work started before it stops. */
  generation: number;
  /** Signals to the mirror's workflow, delivered one after the other. */
  signals: Promise<void>;
  /** cancel_table_addition idempotency keys already used (their workflow IDs are REJECT_DUPLICATE). */
  cancellationKeys: Set<string>;
  /** Work running for the mirror: a drop or a cancellation waits for what it stopped to wind down. */
  tasks: Set<Promise<void>>;
}

/** A row of PeerDB's peerdb_stats.flow_errors: each failed activity attempt logs its error (Alerter.LogFlowError). */
export interface FlowLog {
  id: number;
  flowName: string;
  errorMessage: string;
  errorType: 'error' | 'warn' | 'info';
  at: Date;
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

/** DropFlowWorkflow (flow/workflows/drop_flow.go) tries each side's drop 50 times, sleeping tries² seconds between. */
const DROP_TRIES = 50;

/**
 * After a failed SyncFlow, CDCFlowWorkflow's main loop sleeps 1 + min(ErrorCount, 9) minutes before a new run starts
 * it again (cdc_flow.go); timeScale shortens that, down to this floor, so that a tiny timeScale does not respawn the
 * client in a tight loop while the source is down.
 */
const PULL_RETRY_FLOOR_MS = 100;

export interface MirrorTimings {
  /** Each asynchronous state transition (pause, modify, drop, setup). */
  transitionMs: number;
  /** PeerDB's own durations (retry intervals, the synchronous drop of a failed mirror) are multiplied by this. */
  timeScale: number;
}

export interface MirrorsOptions extends MirrorTimings {
  peers: ReadonlyMap<string, Peer>;
  copier: SnapshotCopier;
  clickhouse: ClickHouseClient;
  delays: Delays;
  /** With the double's activeSlots: a RUNNING mirror's slot is held active by a pull (slot-pull.ts). */
  pulls?: SlotPulls | undefined;
  /** Read at each use: knobs the tests turn. */
  knobs(): {
    stuck: boolean;
    signalDelayMs: number;
    dropLingerMs: number;
    failedDropMs: number;
    snapshotFails: readonly string[];
  };
}

/** Thrown inside a mirror's work when it was dropped or cancelled meanwhile: the work just stops. */
class Superseded extends Error {}

/**
 * The mirrors and their life cycle, after PeerDB's CDCFlowWorkflow (flow/workflows/cdc_flow.go), SetupFlow and
 * SnapshotFlow, without the CDC. Each step that PeerDB retries is retried with PeerDB's policy (retry-policies.ts):
 * a step that keeps failing leaves the mirror in SETUP or SNAPSHOT for ever, as in PeerDB.
 */
export class Mirrors {
  private readonly live = new Map<string, Mirror>();
  /** Mirrors whose catalog row is gone while their Temporal workflow still runs (the end of DropFlowWorkflow). */
  private readonly closing = new Set<string>();
  private readonly everCreated = new Set<string>();
  private readonly work = new Set<Promise<void>>();
  /** What PeerDB's activities logged, oldest first. */
  readonly logs: FlowLog[] = [];
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

  /**
   * CreateCDCFlow after validation (flow/cmd/handler.go): a catalog row means "flow already exists"; a workflow
   * still running without one (a drop finishing) means "workflow already exists for flow".
   */
  assertCreatable(name: string): void {
    if (this.live.has(name)) throw alreadyExists(`flow already exists: ${name}`);
    if (this.closing.has(name)) throw alreadyExists(`workflow already exists for flow: ${name}`);
  }

  create(config: FlowConnectionConfigs): Mirror {
    const mirror: Mirror = {
      id: String(++this.lastId),
      name: config.flowJobName,
      createdAt: new Date(),
      config,
      catalogMappings: structuredClone(config.tableMappings),
      status: 'STATUS_SETUP',
      rowsSynced: 0,
      clones: [],
      error: undefined,
      retrying: undefined,
      holdsSlot: false,
      pendingUpdate: undefined,
      generation: 0,
      signals: Promise.resolve(),
      cancellationKeys: new Set(),
      tasks: new Set(),
    };
    this.live.set(mirror.name, mirror);
    this.everCreated.add(mirror.name);
    this.run(mirror, (isCurrent) => this.setUp(mirror, isCurrent));
    return mirror;
  }

  /**
   * FlowStateChange (flow/cmd/handler.go): signals a config update (unless the mirror is terminal), then acts on
   * the requested state. Both are Temporal signals: the request returns before the workflow reads them. Only the
   * drop of a failed or completed mirror is done within the request.
   */
  async changeState(mirror: Mirror, requested: FlowStatus, update: CdcFlowConfigUpdate | undefined): Promise<void> {
    const current = mirror.status;
    if (update && !NO_UPDATES.has(current)) this.signal(mirror, () => this.receiveUpdate(mirror, update));
    if (requested === current) return;
    switch (requested) {
      case 'STATUS_PAUSED':
        if (current === 'STATUS_RUNNING') this.signal(mirror, () => this.receivePause(mirror));
        return;
      case 'STATUS_RUNNING':
        if (current === 'STATUS_PAUSED') this.signal(mirror, () => this.receiveResume(mirror));
        return;
      case 'STATUS_RESYNC':
        throw unimplemented('resync is not modelled by the PeerDB Flow API test double');
      case 'STATUS_TERMINATING':
      case 'STATUS_TERMINATED':
        if (current === 'STATUS_TERMINATING' || current === 'STATUS_TERMINATED') return;
        if (current === 'STATUS_FAILED' || current === 'STATUS_COMPLETED') return this.dropWithinRequest(mirror);
        this.signal(mirror, () => this.receiveDrop(mirror));
        return;
      default:
        throw invalidArgument(`illegal state change requested: ${requested}, current state is: ${current}`);
    }
  }

  /**
   * CancelTableAddition (flow/cmd/cancel_table_addition.go, workflows/cancel_table_addition_flow.go): only in SETUP
   * or SNAPSHOT; the mirror starts over RUNNING with the catalog's tables plus the added tables whose snapshot
   * completed, and the others leave the publication. Synchronous. Returns the tables after cancellation.
   */
  async cancelTableAddition(
    mirror: Mirror,
    currentlyReplicating: TableMapping[],
    idempotencyKey: string,
    assumeNoRemoval: boolean,
  ): Promise<TableMapping[]> {
    if (mirror.status !== 'STATUS_SETUP' && mirror.status !== 'STATUS_SNAPSHOT') {
      throw failedPrecondition(`cannot cancel table addition for flow ${mirror.name} in status ${mirror.status}`);
    }
    if (mirror.cancellationKeys.has(idempotencyKey)) {
      throw internal(
        `failed to start cancel table addition workflow: Workflow execution already finished successfully. WorkflowId: table-addition-cancellation-${mirror.name}-${idempotencyKey}`,
      );
    }
    mirror.cancellationKeys.add(idempotencyKey);
    const replicating = new Set(currentlyReplicating.map((mapping) => mapping.sourceTableIdentifier));
    const removed = mirror.catalogMappings.filter((mapping) => !replicating.has(mapping.sourceTableIdentifier));
    if (removed.length > 0 && !assumeNoRemoval) {
      throw failedPrecondition(
        `cannot cancel table addition because the following tables are expected to be removed during the operation and cleanup for that is not implemented: ${removed.map((m) => m.sourceTableIdentifier).join(', ')}; if you're certain this won't happen, set assume_table_removal_will_not_happen to true to override and proceed with cancellation`,
      );
    }
    const completed = new Set(mirror.clones.filter((clone) => clone.done).map((clone) => clone.source));
    const inCatalog = new Set(mirror.catalogMappings.map((mapping) => mapping.sourceTableIdentifier));
    const final = [
      ...mirror.catalogMappings,
      ...currentlyReplicating.filter((m) => !inCatalog.has(m.sourceTableIdentifier) && completed.has(m.sourceTableIdentifier)),
    ];
    // CleanupCurrentParentMirror terminates the running workflow and its children.
    await this.supersede(mirror);
    const leaving = mirror.config.tableMappings.filter(
      (m) => !final.some((kept) => kept.sourceTableIdentifier === m.sourceTableIdentifier),
    );
    await this.pause(this.options.transitionMs);
    mirror.config.tableMappings.splice(0, mirror.config.tableMappings.length, ...structuredClone(final));
    mirror.catalogMappings = structuredClone(final);
    mirror.retrying = undefined;
    this.setStatus(mirror, 'STATUS_RUNNING');
    if (mirror.holdsSlot && leaving.length > 0) {
      await this.withSource(mirror, (client) => removeTablesFromPublication(client, replicationNames(mirror.config), parsed(leaving)));
    }
    return structuredClone(final);
  }

  /** Stops all work: pending steps end (the owner closes the delays first), copies stop after their current batch. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.work]);
    await this.options.pulls?.releaseAll();
  }

  /**
   * The slot and publication of every mirror not dropped: for the owner to remove when the double goes away (a
   * database holding a logical slot cannot be dropped).
   */
  async releaseAll(): Promise<void> {
    // PostgreSQL refuses to drop an active slot: the pulls go first.
    await this.options.pulls?.releaseAll();
    for (const mirror of this.live.values()) {
      if (!mirror.holdsSlot) continue;
      await this.withSource(mirror, (client) => dropPublicationAndSlot(client, replicationNames(mirror.config))).catch(() => undefined);
      mirror.holdsSlot = false;
    }
  }

  // --- Signals, as CDCFlowWorkflow's selectors receive them ---

  /** Delivers a signal after one workflow task's latency, in the order signals were sent. */
  private signal(mirror: Mirror, receive: () => void): void {
    mirror.signals = mirror.signals.then(async () => {
      if (await this.options.delays.wait(this.options.knobs().signalDelayMs)) receive();
    });
  }

  /**
   * cdc-dynamic-properties: processed by the pause loop, kept in the state by the main loop (RUNNING) and while
   * pausing; lost in SETUP, SNAPSHOT and MODIFYING, whose selectors do not listen for it, at the next
   * continue-as-new (the Go SDK carries no unread signal over: sdk-go internal/internal_workflow.go).
   */
  private receiveUpdate(mirror: Mirror, update: CdcFlowConfigUpdate): void {
    if (mirror.status === 'STATUS_PAUSED') this.applyUpdate(mirror, update);
    else if (mirror.status === 'STATUS_RUNNING' || mirror.status === 'STATUS_PAUSING') mirror.pendingUpdate = update;
  }

  /** peer-flow-signal PauseSignal: the main loop pauses; SETUP and SNAPSHOT log "pause requested ... ignoring". */
  private receivePause(mirror: Mirror): void {
    if (mirror.status !== 'STATUS_RUNNING') return;
    // The main loop cancels SyncFlow and waits for it before the run continues as new into the pause loop.
    this.setStatus(mirror, 'STATUS_PAUSING');
    this.run(mirror, async (isCurrent) => {
      await this.releasePull(mirror);
      await this.step(isCurrent);
      this.setStatus(mirror, 'STATUS_PAUSED');
      const pending = mirror.pendingUpdate;
      if (pending) {
        mirror.pendingUpdate = undefined;
        this.applyUpdate(mirror, pending);
      }
    });
  }

  /** peer-flow-signal NoopSignal: resumes a paused mirror; one that already left PAUSED never reads it. */
  private receiveResume(mirror: Mirror): void {
    if (mirror.status === 'STATUS_PAUSED') this.setStatus(mirror, 'STATUS_RUNNING');
  }

  /** flow-state-change-signal TERMINATING: every selector of CDCFlowWorkflow listens for it. */
  private receiveDrop(mirror: Mirror): void {
    if (mirror.status === 'STATUS_TERMINATING' || !this.live.has(mirror.name)) return;
    this.setStatus(mirror, 'STATUS_TERMINATING');
    const stopped = this.supersede(mirror);
    this.run(mirror, async () => {
      await stopped;
      // The main loop waits for the cancelled SyncFlow before it continues as new into DropFlowWorkflow.
      await this.releasePull(mirror);
      await this.dropSource(mirror);
      // RemoveFlowDetailsFromCatalog: from now on 404; the workflow itself completes a moment later.
      this.live.delete(mirror.name);
      this.closing.add(mirror.name);
      await this.options.delays.wait(this.options.knobs().dropLingerMs);
      this.closing.delete(mirror.name);
    }, { afterDrop: true });
  }

  /**
   * shutdownFlow (handler.go) for a failed mirror, dropFlow for a completed one: the request waits for the
   * workflow's cancellation (up to 2 minutes) and for DropFlowWorkflow (up to 5 minutes). failedDropMs is how long
   * that takes here.
   */
  private async dropWithinRequest(mirror: Mirror): Promise<void> {
    this.setStatus(mirror, 'STATUS_TERMINATING');
    await this.supersede(mirror);
    await this.releasePull(mirror);
    await this.pause(this.options.knobs().failedDropMs);
    await this.dropSource(mirror);
    this.live.delete(mirror.name);
  }

  private log(mirror: Mirror, errorMessage: string): void {
    this.logs.push({ id: this.logs.length + 1, flowName: mirror.name, errorMessage, errorType: 'error', at: new Date() });
  }

  /** Stops the mirror's running work (its steps see they are no longer current) and waits for it to end. */
  private async supersede(mirror: Mirror): Promise<void> {
    mirror.generation += 1;
    mirror.pendingUpdate = undefined;
    await Promise.allSettled([...mirror.tasks]);
  }

  /**
   * Every status change goes through here. With activeSlots, the mirror's pull follows its status: SyncFlow runs
   * exactly while CDCFlowWorkflow's main loop does, which is while the mirror is RUNNING (cdc_flow.go; slot-pull.ts).
   */
  private setStatus(mirror: Mirror, status: FlowStatus): void {
    mirror.status = status;
    const { pulls } = this.options;
    if (!pulls) return;
    if (status === 'STATUS_RUNNING' && mirror.holdsSlot && !this.closed && this.live.get(mirror.name) === mirror) {
      pulls.hold(mirror.id, () => ({ settings: this.endpoints(mirror).source, names: replicationNames(mirror.config) }), {
        retryDelayMs: (errors) => Math.max(PULL_RETRY_FLOOR_MS, (1 + Math.min(errors, 9)) * 60_000 * this.options.timeScale),
        onError: (message) => this.log(mirror, message),
      });
    } else {
      void this.releasePull(mirror);
    }
  }

  /** Stops the mirror's pull, if any: resolves once PostgreSQL no longer holds its slot for it. */
  private releasePull(mirror: Mirror): Promise<void> {
    return this.options.pulls?.release(mirror.id) ?? Promise.resolve();
  }

  // --- The workflow's steps ---

  /** SetupFlow, then SnapshotFlow (setup_flow.go executeSetupFlow, snapshot_flow.go), then RUNNING. */
  private async setUp(mirror: Mirror, isCurrent: () => boolean): Promise<void> {
    const { config } = mirror;
    await this.step(isCurrent);
    const tables = parsed(config.tableMappings);
    await this.retrying(isCurrent, mirror, PEERDB_RETRIES.checkConnections, () => this.checkConnections(mirror));
    await this.retrying(isCurrent, mirror, PEERDB_RETRIES.ensurePullability, () =>
      this.withSource(mirror, (client) => ensurePullability(client, tables, !config.initialSnapshotOnly)),
    );
    const destinations = await this.retrying(isCurrent, mirror, PEERDB_RETRIES.createNormalizedTables, () =>
      this.setUpDestinations(mirror, config.tableMappings),
    );
    this.setStatus(mirror, 'STATUS_SNAPSHOT');
    await this.retrying(isCurrent, mirror, PEERDB_RETRIES.setupReplication, async () => {
      if (!VALID_MIRROR_NAME.test(mirror.name)) {
        throw new Error(`invalid flow job name: \`${mirror.name}\`, it should be ^[a-z_][a-z0-9_]*$`);
      }
      await this.withSource(mirror, (client) => createPublicationAndSlot(client, replicationNames(mirror.config), tables));
      mirror.holdsSlot = true;
    });
    // The snapshot's child workflows have MaximumAttempts 1 (snapshot_flow.go cloneTable): a failed copy fails
    // the mirror.
    if (config.doInitialSnapshot) await this.snapshot(mirror, destinations, isCurrent);
    await this.step(isCurrent);
    this.setStatus(mirror, 'STATUS_RUNNING');
  }

  /**
   * processCDCFlowConfigUpdate on a paused mirror, which always ends by resuming it. Additions are dropped
   * whole when one of them is already mirrored (internal.AdditionalTablesHasOverlap). An addition first joins
   * the publication (retried for ever: a table dropped meanwhile keeps the mirror in SNAPSHOT), then runs as a
   * child CDCFlowWorkflow with its own setup (no key check) and snapshot, attempted 20 times.
   */
  private applyUpdate(mirror: Mirror, update: CdcFlowConfigUpdate): void {
    const { config } = mirror;
    Object.assign(config.env, update.updatedEnv);
    if (update.batchSize > 0) config.maxBatchSize = update.batchSize;
    if (update.idleTimeout !== '0') config.idleTimeoutSeconds = update.idleTimeout;
    const additions = this.overlaps(config, update.additionalTables) ? [] : update.additionalTables;
    const removed = new Set(update.removedTables.map((mapping) => mapping.sourceTableIdentifier));
    if (additions.length === 0 && removed.size === 0) {
      this.setStatus(mirror, 'STATUS_RUNNING');
      return;
    }
    this.run(mirror, async (isCurrent) => {
      if (additions.length > 0) {
        this.setStatus(mirror, 'STATUS_SNAPSHOT');
        config.tableMappings.push(...structuredClone(additions));
        await this.step(isCurrent);
        const tables = parsed(additions);
        await this.retrying(isCurrent, mirror, PEERDB_RETRIES.addTablesToPublication, () =>
          this.withSource(mirror, (client) => addTablesToPublication(client, replicationNames(mirror.config), tables)),
        );
        await this.retrying(isCurrent, mirror, PEERDB_RETRIES.tableAdditionChild, async () => {
          await this.retrying(isCurrent, mirror, PEERDB_RETRIES.ensurePullability, () =>
            this.withSource(mirror, (client) => ensurePullability(client, tables, false)),
          );
          const destinations = await this.retrying(isCurrent, mirror, PEERDB_RETRIES.createNormalizedTables, () =>
            this.setUpDestinations(mirror, additions),
          );
          if (!update.skipInitialSnapshotForTableAdditions) await this.snapshot(mirror, destinations, isCurrent);
        });
      }
      if (removed.size > 0) {
        this.setStatus(mirror, 'STATUS_MODIFYING');
        const leaving = config.tableMappings.filter((mapping) => removed.has(mapping.sourceTableIdentifier));
        const kept = config.tableMappings.filter((mapping) => !removed.has(mapping.sourceTableIdentifier));
        config.tableMappings.splice(0, config.tableMappings.length, ...kept);
        await this.step(isCurrent);
        await this.retrying(isCurrent, mirror, PEERDB_RETRIES.removeTablesFromPublication, () =>
          this.withSource(mirror, (client) => removeTablesFromPublication(client, replicationNames(mirror.config), parsed(leaving))),
        );
      }
      mirror.catalogMappings = structuredClone(config.tableMappings);
      this.setStatus(mirror, 'STATUS_RUNNING');
    });
  }

  /** Copies each table's rows, recording its clone. A table named in the snapshotFails knob fails the copy. */
  private async snapshot(mirror: Mirror, tables: DestinationTable[], isCurrent: () => boolean): Promise<void> {
    this.checkCloneNames(mirror, tables);
    /** Each table's clone, from when it starts (InitialLoadSummary has no row for a clone never started). */
    const clones = new Map<DestinationTable, Clone>();
    const { source } = this.endpoints(mirror);
    // One table after the other, in the mappings' order (cloneTables: a BoundSelector of
    // snapshotNumTablesInParallel, 1 by default); the first clone that fails ends the snapshot, the tables before it
    // loaded.
    await this.options.copier.copyRows(source, tables, {
      isCurrent,
      beforeTable: (table) => {
        const clone: Clone = {
          source: table.sourceIdentifier,
          destination: table.name,
          jobName: cloneJobName(mirror, table.sourceIdentifier),
          startedAt: new Date(),
          rows: 0,
          done: false,
        };
        mirror.clones.push(clone);
        clones.set(table, clone);
        if (this.options.knobs().snapshotFails.includes(table.sourceIdentifier)) {
          throw new Error(`failed to clone ${table.sourceIdentifier}: snapshot failure injected by the PeerDB Flow API test double`);
        }
      },
      onRows: (table, count) => {
        if (!isCurrent()) return;
        mirror.rowsSynced += count;
        clones.get(table)!.rows += count;
      },
      onTableDone: (table) => (clones.get(table)!.done = true),
    });
    if (!isCurrent()) throw new Superseded();
  }

  /**
   * Clone child workflow IDs are sanitized names (snapshot_flow.go cloneTable), so two tables differing only in
   * characters outside [A-Za-z0-9_] share one. Cloned one at a time (the default snapshotNumTablesInParallel of
   * 1), the second reuses a closed ID, which Temporal allows; cloned in parallel, the second start is refused and
   * the snapshot fails.
   */
  private checkCloneNames(mirror: Mirror, tables: DestinationTable[]): void {
    if (mirror.config.snapshotNumTablesInParallel <= 1) return;
    const seen = new Set<string>();
    for (const table of tables) {
      const name = cloneJobName(mirror, table.sourceIdentifier);
      if (seen.has(name)) throw new Error(`failed to start clone child workflow: child workflow already started: ${name}`);
      seen.add(name);
    }
  }

  /** CheckConnection and CheckMetadataTables: the source answers, and so does the ClickHouse the double writes to. */
  private async checkConnections(mirror: Mirror): Promise<void> {
    await this.withSource(mirror, (client) => client.query('SELECT 1'));
    await this.options.clickhouse.query({ query: 'SELECT 1', format: 'JSONEachRow' }).then((result) => result.json());
  }

  private setUpDestinations(mirror: Mirror, mappings: TableMapping[]): Promise<DestinationTable[]> {
    const { source, database } = this.endpoints(mirror);
    return this.options.copier.setUpTables(source, database, mappings, destinationShape(mirror.config));
  }

  /** DropFlowSource (drop_flow.go executeCDCDropActivities): tried up to 50 times, tries² seconds apart. */
  private async dropSource(mirror: Mirror): Promise<void> {
    await this.step(() => true);
    for (let tries = 1; ; tries++) {
      try {
        await this.withSource(mirror, (client) => dropPublicationAndSlot(client, replicationNames(mirror.config)));
        mirror.holdsSlot = false;
        return;
      } catch (error) {
        mirror.retrying = `DropFlowSource: ${(error as Error).message}`;
        if (tries >= DROP_TRIES || !(await this.pause(tries * tries * 1000 * this.options.timeScale))) return;
      }
    }
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

  private async withSource<T>(mirror: Mirror, work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await connectToSource(this.endpoints(mirror).source);
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Runs `attempt` until it succeeds, as Temporal runs an activity under `policy`; keeps its last error in
   * mirror.retrying. Throws the last error once the attempts are used up, Superseded when the mirror moved on.
   */
  private async retrying<T>(isCurrent: () => boolean, mirror: Mirror, policy: RetryPolicy, attempt: () => Promise<T>): Promise<T> {
    for (let tries = 1; ; tries++) {
      try {
        const result = await attempt();
        if (!isCurrent()) throw new Superseded();
        mirror.retrying = undefined;
        return result;
      } catch (error) {
        if (error instanceof Superseded || !isCurrent()) throw new Superseded();
        mirror.retrying = `${policy.step}: ${(error as Error).message}`;
        this.log(mirror, (error as Error).message);
        if (policy.maxAttempts > 0 && tries >= policy.maxAttempts) throw error;
        if (!(await this.pauseWhile(retryDelayMs(policy, tries) * this.options.timeScale, isCurrent))) throw new Superseded();
      }
    }
  }

  /** Waits one transition (and on, while stuck); Superseded when the mirror was dropped meanwhile or the double closed. */
  private async step(isCurrent: () => boolean): Promise<void> {
    do {
      if (!(await this.pause(this.options.transitionMs))) throw new Superseded();
    } while (this.options.knobs().stuck);
    if (!isCurrent()) throw new Superseded();
  }

  private pause(ms: number): Promise<boolean> {
    return this.closed ? Promise.resolve(false) : this.options.delays.wait(ms);
  }

  /** pause(), cut short (false) as soon as the work is no longer current. */
  private async pauseWhile(ms: number, isCurrent: () => boolean): Promise<boolean> {
    for (const until = Date.now() + ms; Date.now() < until; ) {
      if (!isCurrent() || !(await this.pause(Math.min(until - Date.now(), 50)))) return false;
    }
    return isCurrent();
  }

  /**
   * Runs asynchronous work for the mirror; an error in it fails the mirror (STATUS_FAILED), unless the mirror has
   * moved on. A drop's own work runs after the generation it bumped.
   */
  private run(mirror: Mirror, work: (isCurrent: () => boolean) => Promise<void>, { afterDrop = false } = {}): void {
    const generation = mirror.generation;
    const isCurrent = () => !this.closed && mirror.generation === generation;
    const done: Promise<void> = work(isCurrent)
      .catch((error: unknown) => {
        if (afterDrop || error instanceof Superseded || !isCurrent()) return;
        mirror.error = error instanceof Error ? error.message : String(error);
        this.setStatus(mirror, 'STATUS_FAILED');
        this.log(mirror, mirror.error);
      })
      .finally(() => {
        this.work.delete(done);
        mirror.tasks.delete(done);
      });
    this.work.add(done);
    mirror.tasks.add(done);
  }
}

function parsed(mappings: TableMapping[]): QualifiedTable[] {
  return mappings.map((mapping) => {
    const table = parseTableIdentifier(mapping.sourceTableIdentifier);
    if (!table) throw new Error(`invalid table name: ${mapping.sourceTableIdentifier}`);
    return table;
  });
}

function cloneJobName(mirror: Mirror, source: string): string {
  return `clone_${mirror.name}_${source}_${mirror.id}`.replace(/[^a-zA-Z0-9_]+/g, '_');
}
