import { parseConfig } from '../../src/config/load.js';
import { createFleet } from '../../src/fleet/fleet.js';
import { silentLogger } from '../../src/support/log.js';

/** A config of two backends serving model `m` (never reached: the tests drive the processor directly) and its fleet. */
export function twoBackendFleet() {
  const config = parseConfig({
    backends: [
      { name: 'a', url: 'http://10.0.0.1:8000', models: ['m'] },
      { name: 'b', url: 'http://10.0.0.2:8000', models: ['m'] },
    ],
  });
  const fleet = createFleet({ config, logger: silentLogger });
  fleet.apply(config);
  return { config, fleet };
}
