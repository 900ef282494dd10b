import { defineConfig } from 'vitest/config';

// The real-vLLM tier: real vLLM servers (CPU) take both cores, so it runs on its own, one file
// at a time, after the rest of the suite.
export default defineConfig({
  test: {
    include: ['test/vllm/**/*.test.ts'],
    fileParallelism: false,
    maxWorkers: 1,
    testTimeout: 120_000,
    hookTimeout: 360_000,
  },
});
