import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gate, type GateInput, type GateDecision } from './drain.js';

type Row = [string, Partial<GateInput>, GateDecision];
const base: GateInput = { command: 'offer', known: false, hasCallId: true, draining: false, upstreamUp: true };
const F: GateDecision = { action: 'forward' };
const RD: GateDecision = { action: 'refuse', why: 'draining' };
const RU: GateDecision = { action: 'refuse', why: 'upstream-down' };
const FU: GateDecision = { action: 'fail', why: 'upstream-down' };
const P: GateDecision = { action: 'probe' };

const rows: Row[] = [
  ['serving: new offer forwarded', {}, F],
  ['serving: answer for unknown call forwarded (rtpengine decides)', { command: 'answer' }, F],
  ['serving: statistics forwarded', { command: 'statistics', hasCallId: false }, F],
  ['draining: ping forwarded (pong keeps the node enabled)', { command: 'ping', hasCallId: false, draining: true }, F],
  ['draining: offer for a call-id the registry lacks → probe rtpengine (may be a re-INVITE)', { draining: true }, P],
  ['draining: offer without call-id refused', { draining: true, hasCallId: false }, RD],
  ['draining: re-INVITE offer for a held call forwarded', { draining: true, known: true }, F],
  ['draining: answer for a held call forwarded', { command: 'answer', draining: true, known: true }, F],
  ['draining: delete for a held call forwarded', { command: 'delete', draining: true, known: true }, F],
  ['draining: query for a held call forwarded', { command: 'query', draining: true, known: true }, F],
  ['draining: publish for a new call refused', { command: 'publish', draining: true, hasCallId: false }, RD],
  ['draining: create with an unknown call-id → probe', { command: 'create', draining: true }, P],
  ['draining: create without call-id refused', { command: 'create', draining: true, hasCallId: false }, RD],
  ['draining: transform refused', { command: 'transform', draining: true, hasCallId: false }, RD],
  ['draining: delete for a call the registry lacks → probe', { command: 'delete', draining: true }, P],
  ['draining: answer for a call the registry lacks → probe', { command: 'answer', draining: true }, P],
  ['draining: query for a call the registry lacks → probe', { command: 'query', draining: true }, P],
  ['draining: upstream health unknown (null counts as up) → probe', { command: 'answer', draining: true, upstreamUp: true }, P],
  ['serving: unknown call never probed (hot path untouched)', { command: 'delete' }, F],
  ['down and draining: answer for an unknown call → load limit, no probe', { command: 'answer', draining: true, upstreamUp: false }, RD],
  ['draining: statistics (no call-id) forwarded', { command: 'statistics', hasCallId: false, draining: true }, F],
  ['draining: list forwarded', { command: 'list', hasCallId: false, draining: true }, F],
  ['down: new offer refused (fail over at once)', { upstreamUp: false }, RU],
  ['down: publish refused', { command: 'publish', hasCallId: false, upstreamUp: false }, RU],
  ['down: re-INVITE for a held call forwarded (rtpengine answers or the request fails alone)', { known: true, upstreamUp: false }, F],
  ['down: delete for a held call forwarded', { command: 'delete', known: true, upstreamUp: false }, F],
  ['down: delete for a call the registry lacks forwarded (deleting never hurts)', { command: 'delete', upstreamUp: false }, F],
  ['down: answer for an unknown call fails', { command: 'answer', upstreamUp: false }, FU],
  ['down: ping answered with an error, never silence', { command: 'ping', hasCallId: false, upstreamUp: false }, FU],
  ['down: statistics fails', { command: 'statistics', hasCallId: false, upstreamUp: false }, FU],
  ['down and draining: new offer refused as draining', { draining: true, upstreamUp: false }, RD],
  ['down and draining: delete for a held call forwarded', { command: 'delete', known: true, draining: true, upstreamUp: false }, F],
  ['no command at all: forwarded (rtpengine explains)', { command: undefined, hasCallId: false }, F],
  ['unknown command, unknown call, draining → probe', { command: 'block media', draining: true }, P],
  ['unknown command, no call-id, draining → forwarded', { command: 'block media', hasCallId: false, draining: true }, F],
];

for (const [name, input, want] of rows) {
  test(`gate: ${name}`, () => assert.deepEqual(gate({ ...base, ...input }), want));
}
