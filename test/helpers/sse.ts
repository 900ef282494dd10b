/** A streamed response read in two steps: its first bytes (so a test can act mid-stream), then the rest. */
export async function openStream(res: Response) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = decoder.decode((await reader.read()).value, { stream: true });
  return {
    /** Reads to the end: the whole text, how many data events it held, and whether it ended with [DONE]. */
    async rest(): Promise<{ text: string; events: number; completed: boolean }> {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      return { text, events: text.split('\n\n').filter((e) => e.startsWith('data: {')).length, completed: text.trimEnd().endsWith('data: [DONE]') };
    },
  };
}

/** Takes an SSE body's text chunks as they arrive and calls `onFrame` with each complete event. */
export function sseFrames(onFrame: (frame: string) => void): (chunk: string) => void {
  let buffer = '';
  return (chunk) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      onFrame(frame);
    }
  };
}
