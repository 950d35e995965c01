import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that load the machine on their own (the bench's smoke run starts a dozen servers and
 * drives them flat out; the rolling restart runs 3 replicas behind two balancers with a
 * writer and clients of every kind, on drain timings) run after the rest, one at a time, so
 * no other file's timing shares the cores with them.
 */
const ALONE = ['test/bench.test.ts', 'test/deploy/rolling-restart.test.ts'];

export default defineConfig({
  test: {
    // PGlite start plus migrations and real-service setup outlast the 5 s/10 s defaults.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'together',
          include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...ALONE],
          // Each file has its own database, Redis prefix and servers; most of a file's time is
          // spent waiting on them, so two files at once on two cores.
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'alone', include: ALONE, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
