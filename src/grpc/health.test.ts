import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeStream } from '../../test/helpers/fake-stream.js';
import { createHealthService as createHealth, healthCheckRequestCodec, healthCheckResponseCodec, ServingStatus, type HealthCheckRequest, type HealthCheckResponse } from './health.js';

/** Served beside ext_proc, as the router does. */
const createHealthService = (now?: () => number) => createHealth(['/envoy.service.ext_proc.v3.ExternalProcessor/Process'], now);

const check = (service: HealthCheckRequest['service'], health = createHealthService()) => {
  const call = new FakeStream<HealthCheckRequest, HealthCheckResponse>(healthCheckResponseCodec);
  health.method.handler(call);
  call.send({ service }).finish();
  return call;
};

afterEach(() => vi.useRealTimers());

describe('grpc.health.v1 messages', () => {
  it('are encoded as protobuf: status is field 1 (varint), service field 1 (string)', () => {
    expect([...healthCheckResponseCodec.encode({ status: ServingStatus.SERVING }).finish()]).toEqual([0x08, 0x01]);
    expect([...healthCheckResponseCodec.encode({ status: ServingStatus.NOT_SERVING }).finish()]).toEqual([0x08, 0x02]);
    expect(healthCheckRequestCodec.decode(Uint8Array.from([0x0a, 0x03, 0x61, 0x62, 0x63]))).toEqual({ service: 'abc' });
    // Envoy's default request is empty; fields this side does not know are skipped.
    expect(healthCheckRequestCodec.decode(new Uint8Array())).toEqual({ service: '' });
    expect(healthCheckRequestCodec.decode(Uint8Array.from([0x10, 0x05, 0x0a, 0x01, 0x78]))).toEqual({ service: 'x' });
  });
});

describe('the health service', () => {
  it('answers SERVING for the server and the services it serves, SERVICE_UNKNOWN for others, and ends the call', () => {
    for (const service of ['', 'envoy.service.ext_proc.v3.ExternalProcessor']) {
      const call = check(service);
      expect(call.written).toEqual([{ status: ServingStatus.SERVING }]);
      expect(call.ended).toBe(true);
    }
    expect(check('some.other.Service').written).toEqual([{ status: ServingStatus.SERVICE_UNKNOWN }]);
  });

  it('answers NOT_SERVING once draining', async () => {
    const health = createHealthService();
    await health.drain(0);
    expect(check('', health).written).toEqual([{ status: ServingStatus.NOT_SERVING }]);
  });

  it('drains at once when no checker came lately', async () => {
    let now = 0;
    const health = createHealthService(() => now);
    check('', health);
    now = 6_000;
    vi.useFakeTimers();
    let drained = false;
    void health.drain(2_000).then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(0);
    expect(drained).toBe(true);
  });

  it('drains once a checker has heard NOT_SERVING and its workers have had a moment, or after the longest wait', async () => {
    vi.useFakeTimers();
    const health = createHealthService();
    check('', health);
    let drained = false;
    void health.drain(2_000).then(() => (drained = true));
    await vi.advanceTimersByTimeAsync(700);
    expect(drained).toBe(false);
    check('', health); // the next check hears it
    await vi.advanceTimersByTimeAsync(200);
    expect(drained).toBe(false);
    await vi.advanceTimersByTimeAsync(60);
    expect(drained).toBe(true);

    const unheard = createHealthService();
    check('', unheard);
    let gaveUp = false;
    void unheard.drain(1_000).then(() => (gaveUp = true));
    await vi.advanceTimersByTimeAsync(999);
    expect(gaveUp).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(gaveUp).toBe(true);
  });
});
