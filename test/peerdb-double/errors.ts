/**
 * Errors as PeerDB's Flow API sends them through grpc-gateway: a gRPC status code, mapped to an HTTP status the way
 * grpc-gateway's HTTPStatusFromCode does, and a body `{"code", "message", "details": []}`.
 */

const CODES = {
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
} as const;

type CodeName = keyof typeof CODES;

const HTTP_STATUS: Record<CodeName, number> = {
  Unknown: 500,
  InvalidArgument: 400,
  DeadlineExceeded: 504,
  NotFound: 404,
  AlreadyExists: 409,
  ResourceExhausted: 429,
  FailedPrecondition: 400,
  Unimplemented: 501,
  Internal: 500,
  Unavailable: 503,
};

interface GrpcErrorBody {
  code: number;
  message: string;
  details: unknown[];
}

export class FlowApiError extends Error {
  constructor(
    readonly codeName: CodeName,
    message: string,
  ) {
    super(message);
    this.name = 'FlowApiError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.codeName];
  }

  body(): GrpcErrorBody {
    return { code: CODES[this.codeName], message: this.message, details: [] };
  }

  /** How PeerDB prints this error when it wraps it in another one (Go's status.Err().Error()). */
  wrapped(): string {
    return `rpc error: code = ${this.codeName} desc = ${this.message}`;
  }
}

export const invalidArgument = (message: string) => new FlowApiError('InvalidArgument', message);
export const failedPrecondition = (message: string) => new FlowApiError('FailedPrecondition', message);
export const notFound = (message: string) => new FlowApiError('NotFound', message);
export const alreadyExists = (message: string) => new FlowApiError('AlreadyExists', message);
export const internal = (message: string) => new FlowApiError('Internal', message);
export const unimplemented = (message: string) => new FlowApiError('Unimplemented', message);
export const unavailable = (message: string) => new FlowApiError('Unavailable', message);

/** The error a knob injects with a chosen HTTP status: the gRPC code grpc-gateway would have mapped to it. */
export function injectedError(httpStatus: number): { status: number; body: GrpcErrorBody } {
  const codeName = (Object.keys(HTTP_STATUS) as CodeName[]).find(
    (name) => name !== 'Unknown' && HTTP_STATUS[name] === httpStatus,
  );
  return {
    status: httpStatus,
    body: {
      code: CODES[codeName ?? 'Unknown'],
      message: `injected by the PeerDB Flow API test double (HTTP ${httpStatus})`,
      details: [],
    },
  };
}
