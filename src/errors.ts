// The one error catalogue: every failure has a stable code, an operator-facing message, and its
// mapping to a gRPC status (allocator), an ng error-reason (proxy) and a CLI exit code.
// Add a code here before throwing it; never `throw new Error('failed')` in src/.

/** gRPC status codes (numeric, as in grpc/status.proto) so this module needs no gRPC import. */
export const GrpcStatus = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5,
  ALREADY_EXISTS: 6, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9,
  ABORTED: 10, OUT_OF_RANGE: 11, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
} as const;
type Grpc = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** Exit codes (sysexits.h where one fits). */
export const Exit = {
  OK: 0, FAILURE: 1, USAGE: 64, DATAERR: 65, UNAVAILABLE: 69, SOFTWARE: 70, OSERR: 71,
  CANTCREAT: 73, TEMPFAIL: 75, NOPERM: 77, CONFIG: 78,
} as const;

type Details = Record<string, unknown>;
interface Spec {
  /** What happened and what to do, built from the details. */
  message: (d: Details) => string;
  grpc: Grpc;
  exit: number;
  /** ng `error-reason` when the proxy answers this error itself. */
  ngReason?: string;
}

const s = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v));

const CATALOGUE = {
  // --- configuration and CLI -------------------------------------------------------------
  CONFIG_INVALID: {
    message: (d) => `invalid configuration:\n  - ${(d.problems as string[]).join('\n  - ')}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.CONFIG,
  },
  CONFIG_CONTROL_CHARACTERS: {
    message: (d) => `configuration values must not contain control characters (line breaks, NUL, escape…): they end up in rtpengine's config file and command line, iptables rules and db_text rows, where a line break would start a new option or rule. Remove them from:\n  - ${(d.problems as string[]).join('\n  - ')}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.CONFIG,
  },
  CLI_USAGE: {
    message: (d) => `${s(d.reason)}; run 'rtpengine-k8s help' for the commands and options`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE,
  },

  // --- ng protocol: framing and codec ---------------------------------------------------------
  NG_NO_COOKIE: {
    message: (d) => `ng message has no cookie (${s(d.reason ?? 'no space before the dictionary')}); dropped`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR,
  },
  NG_COOKIE_TOO_LONG: {
    message: (d) => `ng cookie is ${s(d.length)} bytes, the limit is ${s(d.max)}; dropped`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR,
  },
  NG_NO_PAYLOAD: {
    message: () => 'ng message has a cookie but no dictionary after the space',
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Invalid data (no payload)',
  },
  NG_BAD_FORMAT: {
    message: (d) => `ng dictionary must start with 'd' (bencode) or '{' (JSON), got byte ${s(d.byte)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Invalid NG data format',
  },
  NG_BENCODE_INVALID: {
    message: (d) => `ng dictionary is not valid bencode at offset ${s(d.offset)}: ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Could not decode bencode dictionary',
  },
  NG_JSON_INVALID: {
    message: (d) => `ng dictionary is not valid JSON: ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Could not decode JSON dictionary',
  },
  NG_NOT_DICT: {
    message: (d) => `ng payload root must be a dictionary, got ${s(d.type)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Could not decode bencode dictionary',
  },
  NG_TOO_DEEP: {
    message: (d) => `ng dictionary nests deeper than ${s(d.max)} levels; rejected`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Could not decode bencode dictionary',
  },
  NG_TOO_LARGE: {
    message: (d) => `ng message of ${s(d.size)} bytes exceeds the ${s(d.max)}-byte limit`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR, ngReason: 'Message too large',
  },
  NG_BAD_REPLY: {
    message: (d) => `rtpengine reply is not usable: ${s(d.reason)}`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.SOFTWARE,
  },

  // --- ng protocol: transport -------------------------------------------------------------------
  NG_TIMEOUT: {
    message: (d) => `no ng reply from ${s(d.peer)} after ${s(d.attempts)} attempt(s) of ${s(d.timeoutMs)} ms (command ${s(d.command)}); is rtpengine running and listening there?`,
    grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: Exit.UNAVAILABLE, ngReason: 'rtpengine did not answer (timeout)',
  },
  NG_REMOTE_ERROR: {
    message: (d) => `rtpengine answered ${s(d.command)} with error: ${s(d.reason)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.FAILURE,
  },
  NG_SOCKET: {
    message: (d) => `ng socket error towards ${s(d.peer)}: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE, ngReason: 'rtpengine unreachable',
  },
  NG_CLOSED: {
    message: (d) => `ng client to ${s(d.peer)} was closed while ${s(d.inFlight ?? 'a')} request(s) waited`,
    grpc: GrpcStatus.CANCELLED, exit: Exit.UNAVAILABLE, ngReason: 'rtpengine connection closed',
  },
  NG_ABORTED: {
    message: (d) => `ng request to ${s(d.peer)} (command ${s(d.command)}) was abandoned by its caller after ${s(d.attempts)} attempt(s)`,
    grpc: GrpcStatus.CANCELLED, exit: Exit.TEMPFAIL,
  },
  NG_ENCODE_INVALID: {
    message: (d) => `cannot bencode ng value at ${s(d.path)}: ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.SOFTWARE,
  },

  // --- ng proxy (sidecar) ------------------------------------------------------------------------
  PROXY_DRAINING: {
    message: () => 'this rtpengine is draining: new calls are refused so Kamailio picks another node',
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.TEMPFAIL, ngReason: 'Parallel session limit reached',
  },
  PROXY_UPSTREAM_DOWN: {
    message: (d) => `rtpengine at ${s(d.upstream)} is not answering (${s(d.reason)}); new calls are sent elsewhere`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE, ngReason: 'Parallel session limit reached',
  },
  PROXY_UPSTREAM_FAILED: {
    message: (d) => `rtpengine at ${s(d.upstream)} failed for call ${s(d.callId)}: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },

  // --- allocator ---------------------------------------------------------------------------------
  ALLOC_INVALID_ARGUMENT: {
    message: (d) => `invalid request: field '${s(d.field)}' ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE,
  },
  ALLOC_TABLES_EXHAUSTED: {
    message: (d) => `no free kernel table on node ${s(d.node)}: ${s(d.inUse)} of ${s(d.size)} in use (range ${s(d.range)}); scale out to another node or widen --table-range`,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: Exit.UNAVAILABLE,
  },
  ALLOC_POOL_EXHAUSTED: {
    message: (d) => `address pool '${s(d.pool)}' (${s(d.cidr)}) on node ${s(d.node)} has no free address: ${s(d.inUse)} in use; widen the pool or its range`,
    grpc: GrpcStatus.RESOURCE_EXHAUSTED, exit: Exit.UNAVAILABLE,
  },
  ALLOC_UNKNOWN_POOL: {
    message: (d) => `unknown address pool '${s(d.pool)}'; configured pools: ${s(d.known)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.USAGE,
  },
  ALLOC_POOL_INVALID: {
    message: (d) => `address pool '${s(d.pool)}' is invalid: ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.CONFIG,
  },
  ALLOC_NOT_FOUND: {
    message: (d) => `no allocation for pod ${s(d.pod)} (uid ${s(d.uid)}) on node ${s(d.node)}`,
    grpc: GrpcStatus.NOT_FOUND, exit: Exit.FAILURE,
  },
  ALLOC_PERMISSION_DENIED: {
    message: (d) => `allocation refused for pod ${s(d.pod)}: ${s(d.reason)}`,
    grpc: GrpcStatus.PERMISSION_DENIED, exit: Exit.NOPERM,
  },
  ALLOC_UNAUTHENTICATED: {
    message: (d) => `caller not authenticated: ${s(d.reason)}; in Kubernetes mode a pod calls with its projected service-account token (audience ${s(d.audience)}) as 'authorization: Bearer <token>' (sidecar: --allocator-token-file); operators use the operator socket on the node`,
    grpc: GrpcStatus.UNAUTHENTICATED, exit: Exit.NOPERM,
  },
  ALLOC_STATE_CORRUPT: {
    message: (d) => `allocator state file ${s(d.path)} is unreadable (${s(d.reason)}); refusing to start over it. Inspect or move it aside by hand — starting empty would hand out tables and IPs that running pods hold`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.DATAERR,
  },
  ALLOC_STATE_VERSION: {
    message: (d) => `allocator state file ${s(d.path)} has format version ${s(d.found)}, this build reads ${s(d.supported)}; run the matching allocator version`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.DATAERR,
  },
  ALLOC_STATE_UNREADABLE: {
    message: (d) => `cannot read allocator state file ${s(d.path)}: ${s(d.reason)}; it must be a regular file the allocator may read (check its type, owner and mode). Refusing to start rather than start empty over it`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.OSERR,
  },
  ALLOC_STATE_LOCKED: {
    message: (d) => `allocator state file ${s(d.path)} is in use by another allocator (${s(d.holder)}; lock ${s(d.lock)}); two allocators on one state file would overwrite each other's allocations. Stop the other one or give this one its own --state-file (a lock whose holder is gone is taken over automatically)`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.TEMPFAIL,
  },
  ALLOC_STATE_WRITE: {
    message: (d) => `could not persist allocator state to ${s(d.path)}: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.CANTCREAT,
  },
  ALLOC_STATE_DIR_UNWRITABLE: {
    message: (d) => `allocator state directory ${s(d.dir)} is not writable (${s(d.reason)}); the allocator must persist every allocation there before answering, so it does not start. Mount it read-write (the chart's hostPath) or point --state-file at a writable directory`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.CANTCREAT,
  },
  ALLOC_SOCKET_IN_USE: {
    message: (d) => `another allocator is already serving on ${s(d.socket)}; refusing to start a second one on this node`,
    grpc: GrpcStatus.ALREADY_EXISTS, exit: Exit.TEMPFAIL,
  },
  ALLOC_UNAVAILABLE: {
    message: (d) => `allocator at ${s(d.target)} is not reachable: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  ALLOC_CONFLICT: {
    message: (d) => `allocation conflict for ${s(d.resource)}: ${s(d.reason)}`,
    grpc: GrpcStatus.ABORTED, exit: Exit.TEMPFAIL,
  },
  ALLOC_NO_CNI_ADDRESS: {
    message: (d) => `pod ${s(d.pod)} has no media address from the CNI yet: ${s(d.reason)}; in network-status IP mode Multus/whereabouts must attach the interface first (retry shortly)`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.TEMPFAIL,
  },
  // owner: k8s (issue 13) — whereabouts setups the allocator cannot make safe (ADR 0012)
  ALLOC_WHEREABOUTS_UNSAFE: {
    message: (d) => `pool ${s(d.pool)} (${s(d.range)}) cannot be reserved safely beside whereabouts: ${s(d.reason)}; give the media pool its own range (or use --ip-mode network-status) — see docs/kubernetes.md`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.CONFIG,
  },
  ALLOC_UNINSTALLING: {
    message: (d) => `IPPool ${s(d.pool)} is marked uninstalled (${s(d.since)}) by 'ctl cleanup': this installation's allocators write no more entries or Leases; restart the allocator if the installation is to stay (a starting allocator clears the mark)`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.TEMPFAIL,
  },
  ALLOC_WHEREABOUTS_UNCHECKED: {
    message: (d) => `cannot check whereabouts IPPools in namespace ${s(d.namespace)} for ranges overlapping the media pools: ${s(d.reason)}; grant list on ippools there (the chart does), or start anyway with --allow-unchecked-overlap (duplicate IPs possible if another NetworkAttachmentDefinition covers the range) — see docs/kubernetes.md`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.CONFIG,
  },

  // --- files (src/fs/atomic-file.ts; owner: allocator) ---------------------------------------
  FILE_WRITE_FAILED: {
    message: (d) => `could not write ${s(d.path)}: ${s(d.reason)}; nothing was replaced (the previous file, if any, is intact)`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.CANTCREAT,
  },

  // --- kernel (/proc/rtpengine) -----------------------------------------------------------------
  KERNEL_PROC_FAILED: {
    message: (d) => `${s(d.op)} on ${s(d.path)} failed: ${s(d.reason)}; check that the rtpengine kernel module is loaded and this process may write there (proc_uid/proc_gid module parameters)`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.OSERR,
  },
  KERNEL_REQUIRED: {
    message: (d) => `kernel forwarding is required (--require-kernel) but ${s(d.reason)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.UNAVAILABLE,
  },

  // --- sidecar lifecycle --------------------------------------------------------------------------
  RULES_APPLY_FAILED: {
    message: (d) => `${s(d.binary)} failed (exit ${s(d.code)}): ${s(d.stderr)}`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.OSERR,
  },
  RULES_NO_BACKEND: {
    message: (d) => `no usable iptables binary: ${s(d.reason)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.UNAVAILABLE,
  },
  RTPENGINE_EXITED: {
    message: (d) => `rtpengine exited unexpectedly (code ${s(d.code)}, signal ${s(d.signal)}); last log: ${s(d.tail)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.SOFTWARE,
  },
  RTPENGINE_PORT_TAKEN: {
    message: (d) => `another process (${s(d.holder)}) holds rtpengine's ng port ${s(d.ng)}: rtpengine co-binds it (SO_REUSEADDR) and would share its traffic with a stale daemon; stop that process first`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.UNAVAILABLE,
  },
  RTPENGINE_RESTARTING: {
    message: (d) => `rtpengine exited (${s(d.why)}) and is being restarted (attempt ${s(d.attempt)} of ${s(d.max)}); this call's state is gone from it`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  RTPENGINE_RESTARTS_EXHAUSTED: {
    message: (d) => `rtpengine could not be restarted after ${s(d.attempts)} attempt(s) (--rtpengine-restarts); last: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.SOFTWARE,
  },
  RTPENGINE_NOT_READY: {
    message: (d) => `rtpengine did not answer ping on ${s(d.ng)} within ${s(d.timeoutMs)} ms`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  RTPENGINE_VERSION_UNKNOWN: {
    message: (d) => `could not tell the rtpengine version from '${s(d.binary)} --version' (${s(d.output)}); set --rtpengine-era mr11|mr12|mr14.1 explicitly`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.CONFIG,
  },
  RTPENGINE_OPTION_MANAGED: {
    message: (d) => `rtpengine option '${s(d.option)}' is set by the sidecar from the allocation; remove it from --rtpengine-options`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.CONFIG,
  },
  SIDECAR_ACQUIRE_FAILED: {
    message: (d) => `could not acquire a table and media IP for pod ${s(d.pod)} after ${s(d.attempts)} attempt(s) over ${s(d.elapsedS)} s: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  NET_ADDR_FAILED: {
    message: (d) => `could not ${s(d.op)} media address ${s(d.ip)} on ${s(d.dev)}: ${s(d.reason)} (the sidecar needs NET_ADMIN)`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.OSERR,
  },
  NET_ADDR_MISSING: {
    message: (d) => `media address ${s(d.ip)} assigned by the CNI is not present on ${s(d.dev)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.UNAVAILABLE,
  },
  DRAIN_DEADLINE: {
    message: (d) => `drain deadline of ${s(d.deadlineS)} s passed with ${s(d.sessions)} session(s) left`,
    grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: Exit.TEMPFAIL,
  },
  DRAIN_UPSTREAM_DOWN: {
    message: (d) => `drain ended because rtpengine stopped answering while draining (${s(d.sessions)} session(s) last seen); its calls did not finish normally`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  SIDECAR_UNREACHABLE: {
    message: (d) => `sidecar control endpoint ${s(d.url)} is not reachable: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },

  // --- call persistence (rtpengine --redis; src/persistence) -----------------------------------------
  PERSISTENCE_REDIS_DOWN: {
    message: (d) => `Redis ${s(d.redis)} is not reachable: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  PERSISTENCE_REDIS_ERROR: {
    message: (d) => `Redis answered ${s(d.command)} with an error: ${s(d.reason)}`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.UNAVAILABLE,
  },
  PERSISTENCE_REDIS_PROTOCOL: {
    message: (d) => `unexpected Redis reply: ${s(d.reason)}`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.SOFTWARE,
  },
  PERSISTENCE_OFF_REDIS_DOWN: {
    message: (d) => `CALL PERSISTENCE IS OFF: Redis ${s(d.redis)} is not reachable at start (${s(d.reason)}). rtpengine runs without --redis, so a crash of rtpengine loses its calls; restart the sidecar once Redis answers`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  PERSISTENCE_REDIS_LOST: {
    message: (d) => `CALL PERSISTENCE LOST: Redis ${s(d.redis)} stopped answering (${s(d.reason)}); rtpengine keeps serving but calls set up or changed now are not saved, and a crash of rtpengine loses them`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  PERSISTENCE_FOREIGN_CALLS: {
    message: (d) => `CALL PERSISTENCE IS OFF: Redis ${s(d.redis)} holds ${s(d.keys)} call(s) of ${s(d.owner)} but this is ${s(d.self)}: they are not restored here (they belong to another table or media IP) and are left untouched. Give each pod its own database, or remove them once that pod is gone (redis-cli -n DB FLUSHDB)`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.CONFIG,
  },
  PERSISTENCE_RESTORE_INCOMPLETE: {
    message: (d) => `rtpengine restored ${s(d.restored)} of ${s(d.expected)} call(s) from Redis within ${s(d.waitedMs)} ms; ${s(d.pending)} still neither listed by rtpengine nor removed from Redis (first: ${s(d.sample)})`,
    grpc: GrpcStatus.DEADLINE_EXCEEDED, exit: Exit.TEMPFAIL,
  },
  PERSISTENCE_RELEASE_SKIPPED: {
    message: (d) => `call state in Redis ${s(d.redis)} was not removed at release: ${s(d.reason)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.TEMPFAIL,
  },

  // --- Kubernetes ---------------------------------------------------------------------------------
  KUBE_API: {
    message: (d) => `Kubernetes API ${s(d.verb)} ${s(d.resource)} failed: HTTP ${s(d.status)} ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  KUBE_RETRIES_EXHAUSTED: {
    message: (d) => `gave up updating ${s(d.resource)} after ${s(d.attempts)} conflicting attempts; another writer keeps changing it`,
    grpc: GrpcStatus.ABORTED, exit: Exit.TEMPFAIL,
  },
  KUBE_CONFIG: {
    message: (d) => `no usable Kubernetes client configuration: ${s(d.reason)}`,
    grpc: GrpcStatus.FAILED_PRECONDITION, exit: Exit.CONFIG,
  },

  // --- Kamailio sync ------------------------------------------------------------------------------
  KAMAILIO_RPC_FAILED: {
    message: (d) => `Kamailio RPC ${s(d.method)} via ${s(d.transport)} failed: ${s(d.reason)}`,
    grpc: GrpcStatus.UNAVAILABLE, exit: Exit.UNAVAILABLE,
  },
  DBTEXT_WRITE_FAILED: {
    message: (d) => `could not write Kamailio db_text table ${s(d.path)}: ${s(d.reason)}`,
    grpc: GrpcStatus.INTERNAL, exit: Exit.CANTCREAT,
  },
  DBTEXT_PARSE: {
    message: (d) => `db_text file ${s(d.path)} line ${s(d.line)}: ${s(d.reason)}`,
    grpc: GrpcStatus.INVALID_ARGUMENT, exit: Exit.DATAERR,
  },
} satisfies Record<string, Spec>;

export type ErrorCode = keyof typeof CATALOGUE;

/** Base of every error this project throws on purpose. */
export class RtpeK8sError extends Error {
  readonly code: ErrorCode;
  readonly details: Details;
  constructor(code: ErrorCode, details: Details = {}, options?: { cause?: unknown }) {
    super(CATALOGUE[code].message(details), options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
  get grpcStatus(): number { return CATALOGUE[this.code].grpc; }
  get exitCode(): number { return CATALOGUE[this.code].exit; }
  /** The ng `error-reason` the proxy puts in its own `error` reply. */
  get ngReason(): string { return (CATALOGUE[this.code] as Spec).ngReason ?? this.message; }
  toJSON(): Details { return { code: this.code, message: this.message, ...this.details }; }
}

type Prefixed<P extends string> = Extract<ErrorCode, `${P}${string}`>;

export class ConfigError extends RtpeK8sError {
  constructor(code: Prefixed<'CONFIG_' | 'CLI_'>, details?: Details) { super(code, details); }
}
export class NgError extends RtpeK8sError {
  constructor(code: Prefixed<'NG_' | 'PROXY_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class AllocError extends RtpeK8sError {
  constructor(code: Prefixed<'ALLOC_' | 'KERNEL_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class SidecarError extends RtpeK8sError {
  constructor(code: Prefixed<'RULES_' | 'RTPENGINE_' | 'NET_' | 'DRAIN_' | 'SIDECAR_' | 'KERNEL_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class PersistenceError extends RtpeK8sError {
  constructor(code: Prefixed<'PERSISTENCE_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class KubeError extends RtpeK8sError {
  constructor(code: Prefixed<'KUBE_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class FileError extends RtpeK8sError {
  constructor(code: Prefixed<'FILE_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}
export class KamailioError extends RtpeK8sError {
  constructor(code: Prefixed<'KAMAILIO_' | 'DBTEXT_'>, details?: Details, options?: { cause?: unknown }) { super(code, details, options); }
}

export function isCoded(e: unknown, code?: ErrorCode): e is RtpeK8sError {
  return e instanceof RtpeK8sError && (code === undefined || e.code === code);
}

/** Every code with its mappings, for docs and the catalogue test. */
export function catalogue(): Array<{ code: ErrorCode; grpc: number; exit: number; ngReason?: string }> {
  return (Object.keys(CATALOGUE) as ErrorCode[]).map((code) => {
    const spec = CATALOGUE[code] as Spec;
    return { code, grpc: spec.grpc, exit: spec.exit, ngReason: spec.ngReason };
  });
}
