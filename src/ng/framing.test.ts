import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCoded } from '../errors.js';
import { joinMessage, splitMessage, tryCookie, MAX_COOKIE } from './framing.js';

const b = (s: string) => Buffer.from(s, 'latin1');

test('splits at the first space: Kamailio and UUID cookies, spaces inside the dictionary kept', () => {
  const m = splitMessage(b('1_11617_0 d7:command4:pinge'));
  assert.equal(m.cookie.toString(), '1_11617_0');
  assert.equal(m.dict.toString(), 'd7:command4:pinge');
  const u = splitMessage(b('5c3e2f9a-4b1d-4c5e-9f0a-1b2c3d4e5f60 d5:flagsl10:load limitee'));
  assert.equal(u.cookie.length, 36);
  assert.equal(u.dict.toString(), 'd5:flagsl10:load limitee');
});

test('split returns views, not copies', () => {
  const msg = b('c d1:ai1ee');
  const { dict } = splitMessage(msg);
  msg[msg.length - 1] = 0x58;
  assert.equal(dict[dict.length - 1], 0x58);
});

test('rejects missing space, empty cookie, long cookie, no payload with coded errors', () => {
  const cases: Array<[Buffer, string]> = [
    [b('d7:command4:pinge'), 'NG_NO_COOKIE'],
    [b(''), 'NG_NO_COOKIE'],
    [b(' d7:command4:pinge'), 'NG_NO_COOKIE'],
    [b('abc '), 'NG_NO_PAYLOAD'],
    [b(`${'x'.repeat(MAX_COOKIE + 1)} d1:ai1ee`), 'NG_COOKIE_TOO_LONG'],
    [b('x'.repeat(1000)), 'NG_NO_COOKIE'],
  ];
  for (const [msg, code] of cases) {
    assert.throws(() => splitMessage(msg), (e) => isCoded(e, code as never), `${msg.toString().slice(0, 30)} → ${code}`);
  }
  // Exactly the limit is fine.
  assert.equal(splitMessage(b(`${'x'.repeat(MAX_COOKIE)} d1:ai1ee`)).cookie.length, MAX_COOKIE);
});

test('join builds cookie SP dict and round-trips through split', () => {
  const msg = joinMessage('abc_1', b('d6:result4:ponge'));
  assert.equal(msg.toString(), 'abc_1 d6:result4:ponge');
  const back = splitMessage(msg);
  assert.equal(back.cookie.toString(), 'abc_1');
  assert.equal(joinMessage(b('k'), b('d1:ai1ee')).toString(), 'k d1:ai1ee');
});

test('join refuses cookies rtpengine could not split', () => {
  assert.throws(() => joinMessage('', b('de')), (e) => isCoded(e, 'NG_NO_COOKIE'));
  assert.throws(() => joinMessage('a b', b('de')), (e) => isCoded(e, 'NG_NO_COOKIE'));
  assert.throws(() => joinMessage('x'.repeat(257), b('de')), (e) => isCoded(e, 'NG_COOKIE_TOO_LONG'));
  assert.throws(() => joinMessage('a', b('')), (e) => isCoded(e, 'NG_NO_PAYLOAD'));
});

test('tryCookie: cookie or undefined, never throws', () => {
  assert.equal(tryCookie(b('1_2_3 d6:result4:ponge'))?.toString(), '1_2_3');
  assert.equal(tryCookie(b('1_2_3 '))?.toString(), '1_2_3', 'cookie readable even without payload');
  assert.equal(tryCookie(b(' x')), undefined);
  assert.equal(tryCookie(b('nospace')), undefined);
  assert.equal(tryCookie(b('')), undefined);
  assert.equal(tryCookie(b(`${'y'.repeat(300)} de`)), undefined);
});
