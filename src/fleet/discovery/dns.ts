import { kvEventsAt } from '../../config/kv-events-schema.js';
import type { BackendConfig, DnsGroupConfig, RouterConfig } from '../../config/schema.js';
import type { Logger } from '../../support/log.js';
import { hostLiteral } from '../backend.js';
import type { DiscoverySource } from './source.js';

export interface DnsDiscoveryOptions {
  /** Resolves a name to all its addresses. */
  resolveAll: (host: string) => Promise<string[]>;
  logger: Logger;
  /** The addresses of some group changed. */
  onChange: () => void;
}

const keyOf = (g: DnsGroupConfig) => `${g.name}:${g.port}`;

/**
 * One backend per address a name resolves to (e.g. a headless Service), re-resolved every
 * `refreshMs`. A failed lookup says nothing about the servers: the last set stays.
 */
export function createDnsDiscovery(options: DnsDiscoveryOptions): DiscoverySource {
  const { resolveAll, logger, onChange } = options;
  /** Addresses each group resolved to last time it resolved at all. */
  const members = new Map<string, string[]>();
  const timers = new Map<string, NodeJS.Timeout>();
  const errors = new Map<string, string>();

  async function refresh(g: DnsGroupConfig): Promise<void> {
    const key = keyOf(g);
    try {
      const ips = [...new Set(await resolveAll(g.name))].sort();
      if (ips.length === 0) throw new Error('no addresses');
      errors.delete(key);
      if (ips.join(',') !== (members.get(key) ?? []).join(',')) {
        logger.info('dns discovery', { name: g.name, addresses: ips });
        members.set(key, ips);
        if (timers.has(key)) onChange();
      }
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      if (errors.get(key) !== message) {
        logger.warn('dns discovery failed; keeping the last known backends', { name: g.name, error: message, kept: members.get(key)?.length ?? 0 });
        errors.set(key, message);
      }
    }
  }

  return {
    follow(config) {
      const keep = new Set(config.discovery.dns.map(keyOf));
      for (const [key, timer] of timers) {
        if (keep.has(key)) continue;
        clearTimeout(timer);
        timers.delete(key);
        members.delete(key);
      }
      for (const g of config.discovery.dns) {
        const key = keyOf(g);
        clearTimeout(timers.get(key));
        const loop = async () => {
          await refresh(g);
          if (timers.has(key)) timers.set(key, setTimeout(loop, g.refreshMs));
        };
        timers.set(key, setTimeout(loop, 0));
      }
    },
    backends(config) {
      const out: BackendConfig[] = [];
      for (const g of config.discovery.dns) {
        for (const ip of members.get(keyOf(g)) ?? []) {
          const host = hostLiteral(ip);
          out.push({ name: `${g.name}/${host}:${g.port}`, url: `${g.scheme}://${host}:${g.port}`, ...(g.models ? { models: g.models } : {}), ...(g.capacity ? { capacity: g.capacity } : {}), ...(g.kvEvents ? { kvEvents: kvEventsAt(host, g.kvEvents) } : {}) });
        }
      }
      return out;
    },
    stop() {
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
  };
}
