import { defineConfig } from 'vitest/config';

// The soak test runs on its own, after the main suite, so that nothing competes with it.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.test.ts'],
    testTimeout: 30 * 60_000,
    hookTimeout: 60_000,
  },
});
