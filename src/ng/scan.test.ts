import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCoded } from '../errors.js';
import { encodeDict, decodeDict } from './codec.js';
import { UNREADABLE, replyResult, replyScratch, routingOf, scanReplyResult, scanRouting } from './scan.js';
import { sampleOffer } from '../../test/support/ng-sample.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const code = (c: string) => (e: unknown) => isCoded(e, c as never);

test('reads the routing keys of a Kamailio offer', () => {
  const r = scanRouting(encodeDict(sampleOffer(1200, 'c7f2@pbx')));
  assert.deepEqual(r, { format: 'bencode', command: 'offer', callId: 'c7f2@pbx', fromTag: 'as7b3c9d1e', toTag: undefined, viaBranch: undefined, supportsLoadLimit: true });
});

test('a Kamailio 5.6 offer as on the wire (cookie <server_id>_<pid>_<seq>), unsorted keys', () => {
  const r = scanRouting(b('d7:command5:offer7:call-id8:c7f2@pbx8:from-tag4:a1b28:supportsl10:load limite3:sdp5:v=0\r\ne'));
  assert.equal(r.command, 'offer');
  assert.equal(r.callId, 'c7f2@pbx');
  assert.equal(r.fromTag, 'a1b2');
  assert.equal(r.supportsLoadLimit, true);
  const ping = scanRouting(b('d7:command4:pinge'));
  assert.deepEqual(ping, { format: 'bencode', command: 'ping', callId: undefined, fromTag: undefined, toTag: undefined, viaBranch: undefined, supportsLoadLimit: false });
});

test('accepts every key spelling rtpengine accepts', () => {
  for (const k of ['call-id', 'call-ID', 'call id', 'call ID']) assert.equal(scanRouting(encodeDict({ [k]: 'X1' })).callId, 'X1', k);
  for (const k of ['from-tag', 'from tag']) assert.equal(scanRouting(encodeDict({ [k]: 'F' })).fromTag, 'F', k);
  for (const k of ['to-tag', 'to_tag', 'to tag']) assert.equal(scanRouting(encodeDict({ [k]: 'T' })).toTag, 'T', k);
  assert.equal(scanRouting(encodeDict({ 'via-branch': 'z9hG4bK1' })).viaBranch, 'z9hG4bK1');
  // Look-alikes are not routing keys.
  const r = scanRouting(encodeDict({ 'call-Id': 'no', 'callid': 'no', 'from_tag': 'no', 'totag': 'no', 'commands': 'no' }));
  assert.equal(r.callId ?? r.fromTag ?? r.toTag ?? r.command, undefined);
});

test('supports: only a list item exactly "load limit" counts', () => {
  assert.equal(scanRouting(b('d8:supportsl5:other10:load limitee')).supportsLoadLimit, true);
  assert.equal(scanRouting(b('d8:supports10:load limite')).supportsLoadLimit, false);
  assert.equal(scanRouting(b('d8:supportsl11:load limitsee')).supportsLoadLimit, false);
  assert.equal(scanRouting(b('d8:supportsld10:load limiti1eeee')).supportsLoadLimit, false);
  assert.equal(scanRouting(b('d5:flagsl10:load limitee')).supportsLoadLimit, false);
});

test('non-string routing values are ignored; the last occurrence decides', () => {
  assert.equal(scanRouting(b('d7:call-idi5ee')).callId, undefined);
  assert.equal(scanRouting(b('d7:call-id1:a7:call ID1:be')).callId, 'b');
  assert.equal(scanRouting(b('d7:call-id1:a7:call IDi1ee')).callId, undefined);
});

test('UTF-8 values decode as UTF-8, ASCII fast path identical', () => {
  assert.equal(scanRouting(encodeDict({ 'call-id': 'ünïcode@pbx' })).callId, 'ünïcode@pbx');
  assert.equal(scanRouting(encodeDict({ 'call-id': 'plain@pbx' })).callId, 'plain@pbx');
});

test('JSON requests give the same routing view', () => {
  const o = { command: 'delete', 'call ID': 'j1', 'from tag': 'f', to_tag: 't', 'via-branch': 'v', supports: ['load limit'] };
  const j = scanRouting(b(JSON.stringify(o)));
  const be = scanRouting(encodeDict(o));
  assert.deepEqual(j, { ...be, format: 'json' });
  assert.equal(j.callId, 'j1');
});

test('validates the whole dictionary, even values it skips', () => {
  const cases: Array<[string, string]> = [
    ['d7:command4:pinge ', 'NG_BENCODE_INVALID'],
    ['d7:command4:ping', 'NG_BENCODE_INVALID'],
    ['d7:command4:ping3:sdp99999999999:xe', 'NG_BENCODE_INVALID'],
    ['d7:command4:ping3:sdp5:xe', 'NG_BENCODE_INVALID'],
    ['d7:command4:ping5:flagsl1:ae', 'NG_BENCODE_INVALID'],
    ['d7:command4:pingi1ei2ee', 'NG_BENCODE_INVALID'],
    ['d7:command', 'NG_BENCODE_INVALID'],
    [`d1:a${'l'.repeat(32)}${'e'.repeat(32)}e`, 'NG_TOO_DEEP'],
    ['l7:commande', 'NG_NOT_DICT'],
    ['xyz', 'NG_BAD_FORMAT'],
    ['{"command":', 'NG_JSON_INVALID'],
  ];
  for (const [input, c] of cases) assert.throws(() => scanRouting(b(input)), code(c), `${input.slice(0, 40)} → ${c}`);
});

test('scanRouting agrees with decode + routingOf on a realistic offer', () => {
  const enc = encodeDict({ ...sampleOffer(1500), 'to-tag': 'tt', 'via-branch': 'vb' });
  assert.deepEqual(scanRouting(enc), routingOf(decodeDict(enc), 'bencode'));
});

test('scanReplyResult reads result and call-id', () => {
  assert.deepEqual(scanReplyResult(b('d6:result4:ponge')), { result: 'pong' });
  assert.deepEqual(scanReplyResult(b('d3:sdp3:v=07:call-id2:c96:result2:oke')), { result: 'ok', callId: 'c9' });
  assert.deepEqual(scanReplyResult(b('d12:error-reason3:bad6:result5:errore')), { result: 'error' });
  assert.deepEqual(scanReplyResult(b('{"result":"load limit","message":"m"}')), { result: 'load limit', callId: undefined });
  assert.deepEqual(scanReplyResult(b('d3:fooi1ee')), {});
  assert.throws(() => scanReplyResult(b('d6:result2:ok')), code('NG_BENCODE_INVALID'));
});

test('replyResult (trusted replies): result and, on request, call-id, stopping once found', () => {
  assert.equal(replyResult(b('d6:result4:ponge'), false), 'pong');
  assert.equal(replyResult(b('d3:sdp3:v=07:call-id2:c96:result2:oke'), true), 'ok');
  assert.equal(replyScratch.callId, 'c9');
  assert.equal(replyResult(b('d3:sdp3:v=07:call-id2:c96:result2:oke'), false), 'ok');
  assert.equal(replyScratch.callId, undefined, 'call-id only when asked for');
  assert.equal(replyResult(b('d4:tagsd1:ad1:xi1eee12:error-reason3:bad6:result5:errore'), false), 'error', 'non-string values skipped');
  assert.equal(replyResult(b('{"result":"load limit","call-id":"j1"}'), true), 'load limit');
  assert.equal(replyScratch.callId, 'j1');
  assert.equal(replyResult(b('d3:fooi1ee'), true), undefined);
  assert.equal(replyScratch.callId, undefined);
  // Stops at the result: what follows is not read (rtpengine's reply is trusted).
  assert.equal(replyResult(b('d6:result2:ok'), false), 'ok');
  // What it must read and cannot: unreadable, never a throw.
  for (const bad of ['d6:result2:o', 'd6:resul', 'dx:resulte', 'd3:sdp99:v=0e', '{"result":', '', 'd']) {
    assert.equal(replyResult(b(bad), true), UNREADABLE, bad);
  }
  assert.equal(replyResult(b('d3:sdp3:v=07:call-id2:c9e'), true), undefined, 'no result');
  assert.equal(replyScratch.callId, 'c9');
});
