import { describe, expect, it } from 'vitest';
import { ACTIVE_MS, createTenantShares } from './tenant-shares.js';

describe('tenant shares', () => {
  const run = (shares: ReturnType<typeof createTenantShares>, tenant: string, n: number, at = 0) => {
    for (let i = 0; i < n; i++) shares.started('m', tenant, at);
  };

  it('keeps every slot for a tenant alone', () => {
    const shares = createTenantShares();
    run(shares, 'heavy', 30);
    expect(shares.headroom('m', 'heavy', 32, 0)).toBe(0);
  });

  it('has a tenant over its fair share leave one slot for each lighter tenant about', () => {
    const shares = createTenantShares();
    run(shares, 'heavy', 20);
    run(shares, 'light', 3);
    shares.seen('m', 'vip', 0); // held, nothing running yet
    // Share: 32 / 3 tenants; heavy is over it, light and vip under.
    expect(shares.headroom('m', 'heavy', 32, 0)).toBe(2);
    expect(shares.headroom('m', 'light', 32, 0)).toBe(0);
    expect(shares.headroom('m', 'vip', 32, 0)).toBe(0);
    // Another model's tenants are apart.
    expect(shares.headroom('other', 'heavy', 32, 0)).toBe(0);
  });

  it('forgets a tenant idle for a while, and holds back at most a quarter of the slots', () => {
    const shares = createTenantShares();
    run(shares, 'heavy', 6);
    shares.started('m', 'light', 0);
    shares.ended('m', 'light', 0);
    expect(shares.headroom('m', 'heavy', 8, ACTIVE_MS)).toBe(1);
    expect(shares.headroom('m', 'heavy', 8, ACTIVE_MS + 1)).toBe(0);
    for (let i = 0; i < 10; i++) shares.seen('m', `t${i}`, 0);
    run(shares, 'heavy', 10);
    // Share 40 / 11 tenants: ten lighter ones, but only 10 of 40 slots are kept back.
    expect(shares.headroom('m', 'heavy', 40, 0)).toBe(10);
    expect(shares.headroom('m', 'heavy', 20, 0)).toBe(5);
  });

  it('ends count once a request ends, never below zero', () => {
    const shares = createTenantShares();
    run(shares, 'a', 1);
    shares.ended('m', 'a', 0);
    shares.ended('m', 'a', 0);
    run(shares, 'b', 2);
    // a runs nothing (under its share of 2), b runs 2, its share: one kept for a.
    expect(shares.headroom('m', 'b', 4, 0)).toBe(1);
    expect(shares.headroom('m', 'a', 4, 0)).toBe(0);
  });
});
