// Realistic ng messages as Kamailio 5.6 sends them (key set observed: call-id, command, from-tag,
// received-from, replace, sdp, supports), sized to order, for tests, benchmarks and docs.
import { encodeDict } from '../../src/ng/codec.js';

/** An SDP offer from a typical SIP phone: audio with several codecs, DTMF, ICE-less. */
export function sampleSdp(ip = '198.51.100.7', port = 4000, extraLines = 0): string {
  const lines = [
    'v=0', `o=- 3891651231 3891651231 IN IP4 ${ip}`, 's=phone', `c=IN IP4 ${ip}`, 't=0 0',
    `m=audio ${port} RTP/AVP 0 8 9 18 101 96 97`,
    'a=rtpmap:0 PCMU/8000', 'a=rtpmap:8 PCMA/8000', 'a=rtpmap:9 G722/8000', 'a=rtpmap:18 G729/8000',
    'a=fmtp:18 annexb=no', 'a=rtpmap:101 telephone-event/8000', 'a=fmtp:101 0-16',
    'a=rtpmap:96 opus/48000/2', 'a=fmtp:96 useinbandfec=1;usedtx=0;maxaveragebitrate=64000',
    'a=rtpmap:97 AMR-WB/16000', 'a=fmtp:97 octet-align=1;mode-change-capability=2',
    'a=ptime:20', 'a=maxptime:150', 'a=sendrecv', `a=rtcp:${port + 1}`,
  ];
  for (let i = 0; i < extraLines; i++) lines.push(`a=x-phone-info:${i.toString().padStart(4, '0')} firmware=4.2.1 model=desk-7 build=20240131`);
  return lines.join('\r\n') + '\r\n';
}

/** A Kamailio-style offer whose bencoded dictionary is about `targetBytes` long. */
export function sampleOffer(targetBytes = 1500, callId = '5f1c9d2e-8a7b-4c3d-9e0f-1a2b3c4d5e6f@pbx.example.org'): Record<string, unknown> {
  const base = {
    command: 'offer', 'call-id': callId, 'from-tag': 'as7b3c9d1e', 'received-from': ['IP4', '198.51.100.7'],
    replace: ['origin', 'session-connection'], flags: ['trust-address'], supports: ['load limit'],
  };
  let extra = 0;
  for (;;) {
    const sdp = sampleSdp('198.51.100.7', 4000, extra);
    const offer = { ...base, sdp };
    if (encodeDict(offer).length + 35 >= targetBytes || extra > 1000) return offer;
    extra++;
  }
}
