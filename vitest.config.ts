import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'test/soak/**', 'test/vllm/**'],
    // End-to-end suites start real Envoy processes and simulators; keep them from fighting
    // over 2 cores, and give their setup room.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
