import { invalidArgument } from './errors.js';

/** Fields whose value is a protobuf map: their keys are data (e.g. PEERDB_* settings), never renamed. */
const MAP_FIELDS = new Set(['env', 'updatedEnv']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * grpc-gateway (protojson) accepts each field under its JSON name (`flowJobName`) or its proto name
 * (`flow_job_name`): rename proto names to JSON names so that the rest of the double reads one spelling.
 */
export function toJsonNames(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toJsonNames);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, inner]) => {
      const name = key.replace(/_([a-z0-9])/g, (_match, next: string) => next.toUpperCase());
      return [name, MAP_FIELDS.has(name) ? inner : toJsonNames(inner)];
    }),
  );
}

/**
 * One message of a request, read the way protojson reads it: an absent or null field takes its default value,
 * a value of the wrong type is a 400, fields the double does not read are ignored like unknown fields.
 */
export class MessageFields {
  private constructor(private readonly fields: Record<string, unknown>) {}

  static of(value: unknown): MessageFields {
    if (value === undefined || value === null) return new MessageFields({});
    if (!isObject(value)) throw invalidArgument(`proto: syntax error: expected a JSON object, got ${JSON.stringify(value)}`);
    return new MessageFields(value);
  }

  has(name: string): boolean {
    return this.fields[name] !== undefined && this.fields[name] !== null;
  }

  string(name: string): string {
    const value = this.value(name);
    if (value === undefined) return '';
    if (typeof value !== 'string') throw invalid('string', name, value);
    return value;
  }

  bool(name: string): boolean {
    const value = this.value(name);
    if (value === undefined) return false;
    if (typeof value !== 'boolean') throw invalid('bool', name, value);
    return value;
  }

  /** uint32 / int32: a JSON number, or a string holding one. */
  int(name: string): number {
    const value = this.value(name);
    if (value === undefined) return 0;
    const number = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number)) throw invalid('integer', name, value);
    return number;
  }

  /** uint64 / int64, kept as the decimal string the JSON mapping uses for them. */
  int64(name: string): string {
    const value = this.value(name);
    if (value === undefined) return '0';
    if (typeof value === 'number' && Number.isInteger(value)) return String(value);
    if (typeof value === 'string' && /^-?\d+$/.test(value)) return value;
    throw invalid('int64', name, value);
  }

  /**
   * An enum, by name or by number as protojson accepts both (`"STATUS_PAUSED"` or `2`). `numbers[i]` is the
   * number of `values[i]` (by default its index). Absent: the zero value, `values[0]`.
   */
  enumName<T extends string>(name: string, values: readonly [T, ...T[]], numbers?: readonly number[]): T {
    const value = this.value(name);
    if (value === undefined) return values[0];
    const found =
      typeof value === 'number'
        ? values[numbers ? numbers.indexOf(value) : value]
        : values.find((candidate) => candidate === value);
    if (found === undefined) throw invalid('enum', name, value);
    return found;
  }

  strings(name: string): string[] {
    return this.list(name).map((item) => {
      if (typeof item !== 'string') throw invalid('string', name, item);
      return item;
    });
  }

  stringMap(name: string): Record<string, string> {
    const value = this.value(name);
    if (value === undefined) return {};
    if (!isObject(value)) throw invalid('map', name, value);
    for (const item of Object.values(value)) {
      if (typeof item !== 'string') throw invalid('string', name, item);
    }
    return { ...(value as Record<string, string>) };
  }

  message(name: string): MessageFields | undefined {
    return this.has(name) ? MessageFields.of(this.fields[name]) : undefined;
  }

  messages(name: string): MessageFields[] {
    return this.list(name).map((item) => MessageFields.of(item));
  }

  private list(name: string): unknown[] {
    const value = this.value(name);
    if (value === undefined) return [];
    if (!Array.isArray(value)) throw invalid('list', name, value);
    return value;
  }

  private value(name: string): unknown {
    const value = this.fields[name];
    return value === null ? undefined : value;
  }
}

function invalid(type: string, field: string, value: unknown) {
  return invalidArgument(`proto: invalid value for ${type} field ${field}: ${JSON.stringify(value)}`);
}
