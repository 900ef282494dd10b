import type { MessageStream } from './stream.js';

/**
 * Runs `onEnd` once, however a bidirectional stream ends (half-close, error, cancel, reset),
 * and ends our side when the peer half-closes.
 */
export function whenStreamEnds(call: MessageStream<unknown, unknown>, onEnd: () => void): void {
  let ended = false;
  const once = () => {
    if (ended) return;
    ended = true;
    onEnd();
  };
  call.on('end', () => {
    once();
    call.end();
  });
  call.on('error', once);
  call.on('close', once);
}
