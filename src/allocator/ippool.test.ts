// IPPool naming (whereabouts' IPPoolName/normalizeRange) and our entry IDs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipPoolName, ourEntryId, parseOurEntryId } from './ippool.js';
import { canonicalRange } from './pools.js';

test('IPPool names follow whereabouts: canonical range, trailing-colon 0, : and / to -, network prefix', () => {
  assert.equal(ipPoolName(canonicalRange('10.20.0.0/24')), '10.20.0.0-24');
  assert.equal(ipPoolName(canonicalRange('192.168.2.225/28')), '192.168.2.224-28');
  assert.equal(ipPoolName(canonicalRange('fd00:10::/64')), 'fd00-10---64');
  assert.equal(ipPoolName(canonicalRange('10.20.0.0/24'), 'media'), 'media-10.20.0.0-24');
  assert.equal(ipPoolName('fd00::'), 'fd00--0');
});

test('our entry ids round-trip and never look like a container id', () => {
  const id = ourEntryId('node.example.com', 'b7f1-uid');
  assert.deepEqual(parseOurEntryId(id), { node: 'node.example.com', uid: 'b7f1-uid' });
  assert.equal(parseOurEntryId('3f1ce9a0d1'), undefined);
});
