import type { ModelCard } from '../contract/local-answers.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import type { Backend } from '../fleet/backend.js';
import { FilterConfig } from '../gen/envoy/config/route/v3/route_components.js';
import { buildResources } from './resources.js';
import { greaterThanRegex } from './routes.js';

describe('route resources', () => {
  it('matches exactly the integers over a limit (property test)', () => {
    fc.assert(
      fc.property(fc.nat(40_000_000), fc.nat(40_000_000), (limit, value) => {
        expect(new RegExp(greaterThanRegex(limit)).test(String(value))).toBe(value > limit);
      }),
      { numRuns: 2000 },
    );
  });

  it('switches off the fail-open body parse for bodies over upstream.failOpenMaxBodyBytes', () => {
    const config = parseConfig({ backends: [], upstream: { failOpenMaxBodyBytes: 1000 } });
    const backend = { id: 'a', endpoint: '10.0.0.1:8000', models: ['m'], cards: [] as ModelCard[], health: 'healthy' } as Backend;
    const routes = buildResources([backend], config, 't').routes[0]!.virtualHosts[0]!.routes;
    const large = routes.find((r) => r.name === 'large-body')!;
    const matcher = large.match!.headers[0]!;
    expect(matcher.name).toBe('content-length');
    const pattern = matcher.headerMatchSpecifier?.$case === 'stringMatch' ? matcher.headerMatchSpecifier.value.matchPattern : undefined;
    expect(pattern?.$case === 'safeRegex' && pattern.value.regex).toBe(greaterThanRegex(1000));
    expect(FilterConfig.decode(large.typedPerFilterConfig['envoy.filters.http.json_to_metadata']!.value).disabled).toBe(true);
    // After the per-model routes (which the router's answer selects) and before the catch-all.
    const names = routes.map((r) => r.name);
    expect(names.indexOf('model-m')).toBeLessThan(names.indexOf('large-body'));
    expect(names.indexOf('large-body')).toBe(names.indexOf('no-route') - 1);
  });

  it("raises Envoy's 4 KiB bound on fixed answers when the model listing outgrows it", () => {
    const config = parseConfig({ backends: [] });
    const table = (count: number) => {
      const ids = Array.from({ length: count }, (_, i) => `adapter-with-a-fairly-long-name-${i}`);
      const cards = ids.map((id): ModelCard => ({ id, owned_by: 'vllm', root: `/adapters/${id}`, parent: 'm' }));
      const backend = { id: 'a', endpoint: '10.0.0.1:8000', models: ids, cards, health: 'healthy' } as Backend;
      return buildResources([backend], config, 't').routes[0]!;
    };
    expect(table(2).maxDirectResponseBodySizeBytes).toBeUndefined();
    const large = table(40);
    const size = Math.max(
      ...large.virtualHosts[0]!.routes.map((r) => {
        const body = r.action?.$case === 'directResponse' ? r.action.value.body?.specifier : undefined;
        return body?.$case === 'inlineString' ? Buffer.byteLength(body.value) : 0;
      }),
    );
    expect(size).toBeGreaterThan(4096);
    expect(large.maxDirectResponseBodySizeBytes).toBeGreaterThanOrEqual(size);
  });
});
