import { test } from 'node:test';
import assert from 'node:assert/strict';
import bencode from 'bencode';
import { isCoded } from '../errors.js';
import { decodeDict, encodeDict, parseReply, str, plain } from './codec.js';
import { sampleOffer } from '../../test/support/ng-sample.js';

const b = (s: string) => Buffer.from(s, 'latin1');
const code = (c: string) => (e: unknown) => isCoded(e, c as never);

test('decodes unsorted bencode keys; byte strings stay bytes', () => {
  const d = decodeDict(b('d7:command5:offer3:sdp5:v=0\r\n7:call-id2:c1e'));
  assert.deepEqual(Object.keys(d), ['command', 'sdp', 'call-id']);
  assert.ok(d.sdp instanceof Uint8Array);
  assert.equal(str(d.sdp), 'v=0\r\n');
  assert.equal(str(d.command), 'offer');
});

test('decodes nested lists, dicts, negative integers', () => {
  const d = decodeDict(b('d5:flagsl13:trust-address5:SIP-1e4:tagsd1:ad1:xi-5eee5:limiti0ee'));
  assert.deepEqual(plain(d), { flags: ['trust-address', 'SIP-1'], tags: { a: { x: -5 } }, limit: 0 });
});

test('decodes JSON dictionaries', () => {
  const d = decodeDict(b('{"command":"ping","n":1,"l":["load limit"]}'));
  assert.equal(str(d.command), 'ping');
  assert.deepEqual(d.l, ['load limit']);
});

test('every malformed dictionary is a coded error', () => {
  const cases: Array<[string, string]> = [
    ['', 'NG_NO_PAYLOAD'],
    ['x', 'NG_BAD_FORMAT'],
    [' d1:ai1ee', 'NG_BAD_FORMAT'],
    ['l4:pinge', 'NG_NOT_DICT'],
    ['i5e', 'NG_NOT_DICT'],
    ['4:ping', 'NG_NOT_DICT'],
    ['[1]', 'NG_NOT_DICT'],
    ['d7:command4:pinge junk', 'NG_BENCODE_INVALID'],
    ['d7:command4:pingeX', 'NG_BENCODE_INVALID'],
    ['d7:command4:ping', 'NG_BENCODE_INVALID'],
    ['d7:command99999999999:pinge', 'NG_BENCODE_INVALID'],
    ['d7:command9999:pinge', 'NG_BENCODE_INVALID'],
    ['di1e1:ae', 'NG_BENCODE_INVALID'],
    ['d1:ai1.5ee', 'NG_BENCODE_INVALID'],
    ['d1:aie', 'NG_BENCODE_INVALID'],
    ['d1:ai-ee', 'NG_BENCODE_INVALID'],
    ['d1:aee', 'NG_BENCODE_INVALID'],
    ['d1:ae', 'NG_BENCODE_INVALID'],
    ['d:e', 'NG_BENCODE_INVALID'],
    ['d9:__proto__d1:ai1eee', 'NG_BENCODE_INVALID'],
    [`d1:a${'l'.repeat(40)}${'e'.repeat(40)}e`, 'NG_TOO_DEEP'],
    [`d1:a${'d1:a'.repeat(40)}i1e${'e'.repeat(40)}e`, 'NG_TOO_DEEP'],
    ['{"a":', 'NG_JSON_INVALID'],
    ['{"a":1} x', 'NG_JSON_INVALID'],
    [`{"a":${'['.repeat(40)}${']'.repeat(40)}}`, 'NG_TOO_DEEP'],
    [`{"a":${'['.repeat(100000)}`, 'NG_TOO_LARGE'],
  ];
  for (const [input, c] of cases) assert.throws(() => decodeDict(b(input)), code(c), `${input.slice(0, 40)} → ${c}`);
});

test('depth limit: 32 levels decode, 33 do not', () => {
  const nest = (n: number) => `d1:a${'l'.repeat(n - 1)}i1e${'e'.repeat(n - 1)}e`;
  assert.doesNotThrow(() => decodeDict(b(nest(32))));
  assert.throws(() => decodeDict(b(nest(33))), code('NG_TOO_DEEP'));
});

test('size limit: 64 KiB accepted, one byte more refused', () => {
  const mk = (total: number) => {
    const head = 'd1:s';
    const len = total - head.length - 1;
    const digits = String(len).length;
    const body = len - digits - 1;
    return b(`${head}${body}:${'x'.repeat(body)}e`);
  };
  assert.equal(mk(65536).length, 65536);
  assert.doesNotThrow(() => decodeDict(mk(65536)));
  assert.throws(() => decodeDict(mk(65537)), code('NG_TOO_LARGE'));
});

test('encode → decode round trip of a realistic offer keeps every byte', () => {
  const offer = sampleOffer(1500);
  const enc = encodeDict(offer);
  assert.ok(enc.length > 1400 && enc.length < 1600, `size ${enc.length}`);
  assert.deepEqual(plain(decodeDict(enc)), offer);
  // Binary bytes in a value survive.
  const raw = Buffer.from([0, 1, 0xff, 0x20, 0x65]);
  const d = decodeDict(encodeDict({ sdp: raw }));
  assert.deepEqual(Buffer.from(d.sdp as Uint8Array), raw);
});

test('encode rejects what bencode cannot carry, with a coded error and its path', () => {
  assert.throws(() => encodeDict({ a: 1.5 }), (e) => isCoded(e, 'NG_ENCODE_INVALID') && e.details.path === 'a');
  assert.throws(() => encodeDict({ a: [true] }), (e) => isCoded(e, 'NG_ENCODE_INVALID') && e.details.path === 'a[0]');
  assert.throws(() => encodeDict({ a: new Map() }), code('NG_ENCODE_INVALID'));
  assert.throws(() => encodeDict([] as never), code('NG_ENCODE_INVALID'));
  assert.equal(encodeDict({ b: undefined, a: 'x' }).toString(), 'd1:a1:xe');
});

test('decoder agrees with the bencode package on valid input', () => {
  const enc = encodeDict(sampleOffer(1500));
  assert.deepEqual(decodeDict(enc), bencode.decode(enc));
});

test('parseReply: typed results, strings as text', () => {
  assert.deepEqual(parseReply(b('d6:result4:ponge')), { result: 'pong' });
  const ok = parseReply(b('d6:result2:ok7:warning38:Call-ID not found or tags didn\'t matche'));
  assert.equal(ok.result, 'ok');
  assert.equal(ok.result === 'ok' && ok.warning, "Call-ID not found or tags didn't match");
  const err = parseReply(b('d6:result5:error12:error-reason15:Unknown call-ide'));
  assert.equal(err.result === 'error' && err['error-reason'], 'Unknown call-id');
  const ll = parseReply(b('d6:result10:load limit7:message30:Parallel session limit reachede'));
  assert.equal(ll.result === 'load limit' && ll.message, 'Parallel session limit reached');
  assert.deepEqual(parseReply(b('d5:callsl2:c12:c2e6:result2:oke')), { calls: ['c1', 'c2'], result: 'ok' });
  assert.deepEqual(parseReply(b('{"result":"pong"}')), { result: 'pong' });
});

test('parseReply: unusable replies are NG_BAD_REPLY', () => {
  for (const r of ['d3:fooi1ee', 'd6:resulti1ee', 'd6:result5:weirde', 'garbage', '{"result":', '']) {
    assert.throws(() => parseReply(b(r)), code('NG_BAD_REPLY'), r);
  }
});

test('str() reads bytes and text, nothing else', () => {
  assert.equal(str(new Uint8Array([0x68, 0x69])), 'hi');
  assert.equal(str('x'), 'x');
  assert.equal(str(5), undefined);
  assert.equal(str(undefined), undefined);
  assert.equal(str([]), undefined);
});
