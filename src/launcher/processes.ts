import type { ChildProcess } from 'node:child_process';

/** Polls `url` until it answers 2xx, or throws after `timeoutMs`. */
export async function waitForHttp(url: string, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer at ${url} within ${timeoutMs} ms`);
}

/** Marks a child as stopped on purpose, so its exit handler does not report it. */
export function markStopping(child: ChildProcess): void {
  (child as { stopping?: boolean }).stopping = true;
}

export function isStopping(child: ChildProcess): boolean {
  return (child as { stopping?: boolean }).stopping === true;
}

/** SIGTERM to every child still running, SIGKILL after `graceMs`; resolves once all have exited. */
export async function stopChildren(children: readonly ChildProcess[], graceMs = 3000): Promise<void> {
  await Promise.all(
    children.map((c) => {
      if (c.exitCode !== null || c.signalCode !== null) return undefined;
      markStopping(c);
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
      return exited.then(() => clearTimeout(timer));
    }),
  );
}
