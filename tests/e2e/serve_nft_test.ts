/**
 * `openme serve` end to end with the nftables backend: the real CLI as root
 * in two network namespaces (see scenario.ts for the steps).
 */
import { defineServeScenario } from "./scenario.ts";

defineServeScenario("nft");
