// Runs in the supervisor. Reads a run's captured output file for
// GET /v1/runs/:id/output: once as it is now, or followed (`tail -f`) until
// the run has ended and every byte it wrote has been sent.
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import type { RunService } from '../runs/run-service';

const CHUNK_BYTES = 64 * 1024;
/** How long a follower sleeps between reads while the run is quiet; the run's end wakes it at once. */
const FOLLOW_POLL_MS = 100;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

/** The file as it is now; a run that never started has no file, which reads as empty. */
export async function readOutput(file: string): Promise<{ stream: Readable; length: number }> {
  let size = 0;
  try {
    size = (await stat(file)).size;
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  if (size === 0) return { stream: Readable.from([], { objectMode: false }), length: 0 };
  // Bounded by the size we announce: the file may grow while it is read.
  return { stream: createReadStream(file, { start: 0, end: size - 1, highWaterMark: CHUNK_BYTES }), length: size };
}

/**
 * Streams the file from its start while the run is running, and ends after
 * the last byte written before the run ended. The run's state is read
 * *before* each read to the end of the file: a child's writes are in the file
 * before it exits, so a read that starts after the end was seen is complete.
 */
export function followOutput(service: RunService, id: string, file: string, signal: AbortSignal): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    let fh: FileHandle | null = null;
    let offset = 0;
    try {
      while (!signal.aborted) {
        const record = service.get(id, { result: false });
        const ended = record === undefined || record.state !== 'running';
        if (fh === null) {
          fh = await open(file, 'r').catch((error: unknown) => {
            if (isMissing(error)) return null;
            throw error;
          });
        }
        if (fh !== null) {
          for (;;) {
            const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
            const { bytesRead } = await fh.read(buffer, 0, CHUNK_BYTES, offset);
            if (bytesRead === 0) break;
            offset += bytesRead;
            yield buffer.subarray(0, bytesRead);
          }
        }
        if (ended) return;
        const began = Date.now();
        try {
          await service.waitForEnd(id, FOLLOW_POLL_MS, signal);
        } catch {
          // Freed meanwhile: the next turn sees it gone and ends.
        }
        // A wait that failed or came back early while the run goes on must not make this loop spin.
        const left = FOLLOW_POLL_MS - (Date.now() - began);
        if (left > 0 && service.get(id, { result: false })?.state === 'running') await delay(left, undefined, { signal }).catch(() => undefined);
      }
    } finally {
      await fh?.close();
    }
  }
  return Readable.from(chunks(), { objectMode: false });
}
