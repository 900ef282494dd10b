/**
 * Processes started in sessions of their own (real vLLM servers, and Envoy and the routers beside
 * them) do not get the terminal's Ctrl-C: they are signalled when this process exits, however it
 * exits (Ctrl-C, an error, the end of the run).
 */
const leaders = new Map<number, boolean>();
let hooked = false;

/** `group`: the pid leads a process group (vLLM's API server, engine core and worker), signal all of it. */
export function stopWithThisProcess(pid: number | undefined, group = false): void {
  if (pid === undefined) return;
  leaders.set(pid, group);
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const [leader, isGroup] of leaders) {
      try {
        process.kill(isGroup ? -leader : leader, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  });
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
}
