/**
 * How many of a model's slots each tenant's requests take, so that a tenant using more than its
 * fair share leaves a little room free for the others: a light tenant's request then starts at
 * once instead of waiting for a heavy tenant's to end. Holding room back costs the heavy tenant
 * a few slots only while lighter tenants are about; a tenant alone keeps every slot.
 */
export interface TenantShares {
  /** A request of the tenant was routed (it runs until `ended`). */
  started(model: string, tenant: string, nowMs: number): void;
  ended(model: string, tenant: string, nowMs: number): void;
  /** The tenant has a request waiting: it counts as active. */
  seen(model: string, tenant: string, nowMs: number): void;
  /**
   * Slots a request of `tenant` must leave free among `slots`: none while it runs fewer than its
   * fair share (`slots` over the active tenants), else one for each other active tenant below
   * its share, at most a quarter of the slots.
   */
  headroom(model: string, tenant: string, slots: number, nowMs: number): number;
}

/** A tenant with nothing running stays active this long: its next request is likely near. */
export const ACTIVE_MS = 2000;

interface Usage {
  running: number;
  lastActiveMs: number;
}

export function createTenantShares(): TenantShares {
  const byModel = new Map<string, Map<string, Usage>>();

  const usageOf = (model: string, tenant: string, nowMs: number): Usage => {
    let tenants = byModel.get(model);
    if (!tenants) byModel.set(model, (tenants = new Map()));
    let usage = tenants.get(tenant);
    if (!usage) tenants.set(tenant, (usage = { running: 0, lastActiveMs: nowMs }));
    return usage;
  };
  /** The model's active tenants; drops those long idle. */
  const active = (model: string, nowMs: number): Map<string, Usage> | undefined => {
    const tenants = byModel.get(model);
    if (!tenants) return undefined;
    for (const [tenant, usage] of tenants) if (usage.running === 0 && nowMs - usage.lastActiveMs > ACTIVE_MS) tenants.delete(tenant);
    if (tenants.size === 0) byModel.delete(model);
    return tenants;
  };

  return {
    started(model, tenant, nowMs) {
      const usage = usageOf(model, tenant, nowMs);
      usage.running++;
      usage.lastActiveMs = nowMs;
    },
    ended(model, tenant, nowMs) {
      const usage = byModel.get(model)?.get(tenant);
      if (!usage) return;
      usage.running = Math.max(0, usage.running - 1);
      usage.lastActiveMs = nowMs;
    },
    seen(model, tenant, nowMs) {
      usageOf(model, tenant, nowMs).lastActiveMs = nowMs;
    },
    headroom(model, tenant, slots, nowMs) {
      const tenants = active(model, nowMs);
      if (!tenants || tenants.size < 2) return 0;
      const share = slots / tenants.size;
      if ((tenants.get(tenant)?.running ?? 0) < share) return 0;
      let below = 0;
      for (const [other, usage] of tenants) if (other !== tenant && usage.running < share) below++;
      return Math.min(below, Math.floor(slots / 4));
    },
  };
}
