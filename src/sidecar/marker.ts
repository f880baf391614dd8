// Files the sidecar keeps in its run directory: the drained marker (a drain started on a pod that
// is not terminating survives a container restart) and the status file `rtpengine-k8s status` reads.
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../fs/atomic-file.js';

export function sidecarFileName(runDir: string, uid: string): string {
  return join(runDir, `sidecar-${uid}.json`);
}

export function drainedMarkerName(runDir: string, uid: string): string {
  return join(runDir, `drained-${uid}.json`);
}

export interface DrainedMarker { pod: string; uid: string; trigger: string; at: number }

/** The marker if present and for this UID; a damaged one counts as present (draining is the safe side). */
export async function readDrainedMarker(runDir: string, uid: string): Promise<DrainedMarker | undefined> {
  let text: string;
  try { text = await readFile(drainedMarkerName(runDir, uid), 'utf8'); } catch { return undefined; }
  try {
    const m = JSON.parse(text) as Partial<DrainedMarker>;
    return { pod: String(m.pod ?? '?'), uid, trigger: String(m.trigger ?? '?'), at: Number(m.at ?? 0) };
  } catch {
    return { pod: '?', uid, trigger: 'unreadable marker', at: 0 };
  }
}

export async function writeDrainedMarker(runDir: string, m: DrainedMarker): Promise<string> {
  const path = drainedMarkerName(runDir, m.uid);
  await writeFileAtomic(path, JSON.stringify(m), { mkdir: true });
  return path;
}
