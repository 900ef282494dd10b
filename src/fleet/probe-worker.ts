/** Worker thread entry of workerProbe(): runs each probe it is sent and posts the result back. */
import { parentPort } from 'node:worker_threads';
import { answer, type ProbeCall } from './probe.js';

parentPort!.on('message', (call: ProbeCall) => {
  void answer(call).then((reply) => parentPort!.postMessage(reply));
});
