import type { MessageStream } from '../grpc/stream.js';
import type { DiscoveryRequest, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery.js';
import { DiscoveryResponse as DiscoveryResponseCodec } from '../gen/envoy/service/discovery/v3/discovery.js';
import { whenStreamEnds } from '../grpc/when-stream-ends.js';
import type { Logger } from '../support/log.js';
import type { Snapshot, SnapshotCache } from './snapshot-cache.js';

/** What one Envoy has asked for and been sent, per resource type. */
interface Subscription {
  /** Requested names; empty means all (wildcard). */
  names: string[];
  sentVersion: string | undefined;
  sentNames: string;
  nonce: string;
}

/**
 * Aggregated Discovery Service, state of the world. Each response carries the full set of
 * resources of its type (filtered by the names asked for); an ACK echoes the version and
 * nonce; a NACK carries error_detail and is logged, and the last good version stays in Envoy.
 */
export function createAdsHandler(cache: SnapshotCache, logger: Logger) {
  let nonceCounter = 0;
  const open = new Set<MessageStream<DiscoveryRequest, DiscoveryResponse>>();
  const handler = function streamAggregatedResources(call: MessageStream<DiscoveryRequest, DiscoveryResponse>): void {
    open.add(call);
    const subscriptions = new Map<string, Subscription>();
    let node = 'unknown';
    let closed = false;

    const send = (typeUrl: string, sub: Subscription, snapshot: Snapshot) => {
      const typeSnapshot = snapshot.get(typeUrl);
      if (!typeSnapshot || closed) return;
      const namesKey = sub.names.join('\n');
      // Sent already, whether Envoy took it (ACK) or rejected it (NACK): a rejected version is
      // not resent until the snapshot or the names change.
      if (sub.sentVersion === typeSnapshot.version && sub.sentNames === namesKey) return;
      const resources =
        sub.names.length === 0
          ? [...typeSnapshot.resources.values()]
          : sub.names.map((n) => typeSnapshot.resources.get(n)).filter((r) => r !== undefined);
      sub.sentVersion = typeSnapshot.version;
      sub.sentNames = namesKey;
      sub.nonce = String(++nonceCounter);
      call.write(
        DiscoveryResponseCodec.fromPartial({ versionInfo: typeSnapshot.version, typeUrl, nonce: sub.nonce, resources }),
      );
      logger.debug('xds sent', { node, type: typeUrl.split('.').pop(), version: typeSnapshot.version, resources: resources.length });
    };

    const unsubscribe = cache.subscribe((snapshot) => {
      for (const [typeUrl, sub] of subscriptions) send(typeUrl, sub, snapshot);
    });

    call.on('data', (request: DiscoveryRequest) => {
      if (request.node?.id) node = request.node.id;
      const { typeUrl } = request;
      let sub = subscriptions.get(typeUrl);
      if (!sub) {
        sub = { names: [], sentVersion: undefined, sentNames: '', nonce: '' };
        subscriptions.set(typeUrl, sub);
      } else if (request.responseNonce !== sub.nonce) {
        return; // answers a response that has since been superseded
      }
      if (request.errorDetail) {
        logger.error('Envoy rejected xDS update', {
          node,
          type: typeUrl,
          version: sub.sentVersion,
          error: request.errorDetail.message,
        });
      }
      sub.names = [...request.resourceNames].sort();
      send(typeUrl, sub, cache.current());
    });

    whenStreamEnds(call, () => {
      closed = true;
      open.delete(call);
      unsubscribe();
    });
  };
  /**
   * Ends every open stream (OK). Envoy holds one for as long as the router runs: a replica that
   * is going ends it, so Envoy asks a standby at once instead of when the connection is cut.
   */
  const endAll = () => {
    for (const call of open) call.end();
  };
  return Object.assign(handler, { endAll });
}
