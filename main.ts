/**
 * openme: single packet authorization. `openme serve` keeps service ports
 * closed and opens them for one client address after one valid knock;
 * `openme knock` sends that knock.
 *
 * @module
 */

import { runCli } from "./lib/cli/mod.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args);
  Deno.exit(code);
}
