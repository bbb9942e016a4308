import { defineConfig } from "vitest/config";

// The browser test: `npm run e2e` (RabbitMQ up, `cargo build --bin tourcast` done).
export default defineConfig({
  test: {
    root: ".",
    include: ["e2e/**/*.e2e.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 90_000,
    // The tests are steps of one story on one page: in order, one file.
    sequence: { concurrent: false },
    fileParallelism: false,
  },
});
