import type { ServerDuplexStream } from '@grpc/grpc-js';

/**
 * Runs `onEnd` once, however a bidirectional stream ends (half-close, error, cancel, reset),
 * and ends our side when the peer half-closes.
 */
export function whenStreamEnds(call: ServerDuplexStream<never, never> | ServerDuplexStream<any, any>, onEnd: () => void): void {
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
  call.on('cancelled', once);
  call.on('close', once);
}
