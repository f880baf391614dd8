// Typed views of the ng messages rtpengine-k8s sends and reads. Wire values stay bytes
// (Uint8Array) in decoded dictionaries; typed replies are plain (byte strings as UTF-8 text).

/** A decoded value: byte strings stay bytes (bencode) or arrive as text (JSON). */
export type NgValue = Uint8Array | string | number | boolean | null | NgValue[] | NgDict;
export interface NgDict { [key: string]: NgValue }

/** Byte strings may be given as text or bytes when building a request. */
export type Bytes = string | Uint8Array;

interface WithSupports {
  /** Kamailio sends `["load limit"]` on every command but ping. */
  supports?: string[];
  [key: string]: unknown;
}

export interface NgPing { command: 'ping' }
export interface NgOffer extends WithSupports {
  command: 'offer';
  'call-id': Bytes;
  'from-tag': Bytes;
  sdp: Bytes;
  'via-branch'?: Bytes;
  flags?: string[];
  replace?: string[];
  'received-from'?: string[];
}
export interface NgAnswer extends WithSupports {
  command: 'answer';
  'call-id': Bytes;
  'from-tag': Bytes;
  'to-tag': Bytes;
  sdp: Bytes;
  'via-branch'?: Bytes;
  flags?: string[];
}
export interface NgDelete extends WithSupports {
  command: 'delete';
  'call-id': Bytes;
  'from-tag'?: Bytes;
  'to-tag'?: Bytes;
  'via-branch'?: Bytes;
  flags?: string[];
  'delete delay'?: number;
}
export interface NgQuery extends WithSupports { command: 'query'; 'call-id': Bytes; 'from-tag'?: Bytes; 'to-tag'?: Bytes }
export interface NgList extends WithSupports { command: 'list'; limit?: number | string }
export interface NgStatistics extends WithSupports { command: 'statistics' }

export type NgRequest = NgPing | NgOffer | NgAnswer | NgDelete | NgQuery | NgList | NgStatistics;
export type NgCommand = NgRequest['command'];

/** `ok` carries command-specific keys (sdp, calls, statistics, per-call stats…). */
export interface NgOkReply { result: 'ok'; warning?: string; [key: string]: unknown }
export interface NgErrorReply { result: 'error'; 'error-reason': string; [key: string]: unknown }
export interface NgPongReply { result: 'pong'; [key: string]: unknown }
export interface NgLoadLimitReply { result: 'load limit'; message?: string; [key: string]: unknown }
export type NgReply = NgOkReply | NgErrorReply | NgPongReply | NgLoadLimitReply;
export type NgResult = NgReply['result'];
export const NG_RESULTS: readonly NgResult[] = ['ok', 'error', 'pong', 'load limit'];

/** The commands rtpengine's ng protocol defines (rtpengine's docs/ng_control_protocol.md), as sent on the wire. */
export const NG_COMMANDS: readonly string[] = [
  'ping', 'offer', 'answer', 'delete', 'query', 'list', 'statistics', 'start recording', 'stop recording',
  'pause recording', 'block DTMF', 'unblock DTMF', 'block media', 'unblock media', 'silence media',
  'unsilence media', 'start forwarding', 'stop forwarding', 'play media', 'stop media', 'play DTMF',
  'publish', 'subscribe request', 'subscribe answer', 'unsubscribe', 'inject start', 'inject stop',
  'connect', 'create', 'create answer', 'mesh', 'transform', 'cli',
];

/** What the proxy needs from a request, read in one pass without building objects. */
export interface Routing {
  format: 'bencode' | 'json';
  command?: string;
  callId?: string;
  fromTag?: string;
  toTag?: string;
  viaBranch?: string;
  /** `supports` lists `load limit`. */
  supportsLoadLimit: boolean;
}

/** Per-request knobs; defaults come from the client. */
export interface NgRequestOptions {
  /** Wait per attempt (Kamailio's rtpengine_tout_ms). */
  timeoutMs?: number;
  /** Total attempts, the first included (Kamailio's rtpengine_retr). */
  retries?: number;
  signal?: AbortSignal;
}

export interface NgRequestResult {
  /** The reply's dictionary bytes (after the cookie and its space), untouched. */
  reply: Buffer;
  /** The cookie this client minted for the request (latin1 text). */
  cookie: string;
}

/** The port the proxy depends on: anything that can carry one ng request to rtpengine. */
export interface NgUpstream {
  /** `dict` as an object is bencoded; as a Buffer it is sent as-is (already a dictionary). */
  request(dict: Record<string, unknown> | Buffer, opts?: NgRequestOptions): Promise<NgRequestResult>;
  close(): void;
}
