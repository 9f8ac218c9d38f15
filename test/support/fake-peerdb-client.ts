import type { PeerDbClient } from '../../lib/peerdb/client.js';
import type { CdcFlowConfigUpdate, FlowConnectionConfigs, FlowStatus, MirrorLog, MirrorStatus, TableMapping } from '../../lib/peerdb/types.js';

/**
 * A stand-in for lib/peerdb/client.ts's PeerDbClient in activity unit tests: one mirror, whose state moves as
 * PeerDB's does, asynchronously: a request only queues the states it leads to, and each poll (mirrorState,
 * mirrorStatus) moves the mirror one queued state on. What a test scripts: answers that fail (`failPolls`, the
 * `refuse` of a request), and a mirror that never moves (`stuck`) or stops moving in a state (`stopAt`).
 */
export class FakePeerDbClient {
  /** null: PeerDB does not know the mirror. */
  state: FlowStatus | null;
  tables: string[];
  /** The states the mirror goes through next, one per poll. */
  private readonly next: (FlowStatus | null)[] = [];
  /** The next polls throw these, in order, instead of answering. */
  readonly failPolls: Error[] = [];
  /** A request that throws this instead of being accepted. */
  readonly refuse: { drop?: Error; pause?: Error; update?: Error } = {};
  /** The next creates answer `dropping` (PeerDB still drops the previous mirror of the name) this many times. */
  stillDropping = 0;
  /** The mirror stays where it is, whatever was asked. */
  stuck = false;
  /** The mirror stays in this state once it reaches it. */
  stopAt: FlowStatus | undefined;
  /** Every call, in order: `<method> <mirror>`. */
  readonly calls: string[] = [];

  constructor(readonly mirror: string, state: FlowStatus | null = 'STATUS_RUNNING', tables: string[] = []) {
    this.state = state;
    this.tables = [...tables];
  }

  /** Typed as the real client, for ActivityDependencies: the activities under test call only what is below. */
  asClient(): PeerDbClient {
    return this as unknown as PeerDbClient;
  }

  mirrorState(name: string): Promise<FlowStatus | null> {
    return this.poll('mirrorState', name, () => this.state);
  }

  mirrorStatus(name: string): Promise<MirrorStatus | null> {
    return this.poll('mirrorStatus', name, () =>
      this.state === null
        ? null
        : { flowJobName: name, currentFlowState: this.state, cdcStatus: { config: { tableMappings: this.tables.map(mapping) } } },
    );
  }

  createCdcMirror(config: FlowConnectionConfigs): Promise<'created' | 'exists' | 'dropping'> {
    return this.request('createCdcMirror', config.flowJobName, undefined, () => {
      if (this.stillDropping > 0) {
        this.stillDropping--;
        return 'dropping';
      }
      if (this.state !== null) return 'exists';
      this.state = 'STATUS_SETUP';
      this.tables = config.tableMappings.map((table) => table.sourceTableIdentifier);
      this.next.push('STATUS_SETUP', 'STATUS_SNAPSHOT', 'STATUS_SNAPSHOT', 'STATUS_RUNNING');
      return 'created';
    });
  }

  dropMirror(name: string): Promise<'dropping' | 'gone'> {
    return this.request('dropMirror', name, this.refuse.drop, () => {
      if (this.state === null) return 'gone';
      this.next.push('STATUS_TERMINATING', 'STATUS_TERMINATING', null);
      return 'dropping';
    });
  }

  pauseMirror(name: string): Promise<void> {
    return this.request('pauseMirror', name, this.refuse.pause, () => {
      this.next.push('STATUS_PAUSING', 'STATUS_PAUSED');
    });
  }

  resumeMirror(name: string): Promise<void> {
    return this.request('resumeMirror', name, undefined, () => {
      this.next.push('STATUS_RUNNING');
    });
  }

  updatePausedMirror(name: string, update: CdcFlowConfigUpdate): Promise<void> {
    return this.request('updatePausedMirror', name, this.refuse.update, () => {
      const removed = new Set((update.removedTables ?? []).map((table) => table.sourceTableIdentifier));
      this.tables = this.tables.filter((table) => !removed.has(table));
      this.tables.push(...(update.additionalTables ?? []).map((table) => table.sourceTableIdentifier));
      this.next.push('STATUS_MODIFYING', 'STATUS_RUNNING');
    });
  }

  peerProblem(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }

  mirrorErrors(): Promise<MirrorLog[]> {
    return Promise.resolve([]);
  }

  private poll<T>(method: string, name: string, answer: () => T): Promise<T> {
    this.calls.push(`${method} ${name}`);
    const failure = this.failPolls.shift();
    if (failure) return Promise.reject(failure);
    if (name !== this.mirror) return Promise.resolve(null as T);
    if (!this.stuck && this.state !== this.stopAt && this.next.length > 0) this.state = this.next.shift()!;
    return Promise.resolve(answer());
  }

  private request<T>(method: string, name: string, refusal: Error | undefined, accept: () => T): Promise<T> {
    this.calls.push(`${method} ${name}`);
    if (refusal) return Promise.reject(refusal);
    if (name !== this.mirror) return Promise.reject(new Error(`the fake PeerDB knows only ${this.mirror}, not ${name}`));
    return Promise.resolve(accept());
  }
}

const mapping = (source: string): TableMapping => ({
  sourceTableIdentifier: source,
  destinationTableIdentifier: source.split('.').at(-1)!,
  exclude: [],
  engine: 'CH_ENGINE_REPLACING_MERGE_TREE',
});
