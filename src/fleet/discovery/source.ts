import type { BackendConfig, RouterConfig } from '../../config/schema.js';

/**
 * A source of backends beside the config's own list (DNS names, Kubernetes pods). It follows
 * the groups a config names and calls back when their members change; the fleet then asks
 * every source for its members and reconciles the registry with all of them.
 */
export interface DiscoverySource {
  /** Follows the groups `config` names: starts new ones, stops those no longer named. */
  follow(config: RouterConfig): void;
  /** The members of the groups `config` names, as backends. */
  backends(config: RouterConfig): BackendConfig[];
  stop(): void;
}
