/**
 * Who may change openme's files (lib/config/ownership.ts): the service
 * account from passwd and group, the unsafe-file judgement with its fix, and
 * the check that the service user cannot write the server config.
 */
import assert from "node:assert/strict";
import {
  accountIds,
  configChangeableByOthers,
  unsafeOwnership,
} from "../../lib/config/ownership.ts";
import { withTempDir } from "../support/files.ts";

const IS_LINUX = Deno.build.os === "linux";
const IS_ROOT = IS_LINUX && Deno.statSync("/proc/self").uid === 0;

/** Runs fn with a fake /etc whose passwd and group know an openme account (uid 990, group 991). */
async function withEtc(fn: (etc: string, dir: string) => Promise<void>) {
  await withTempDir("openme-ownership-", async (dir) => {
    const etc = `${dir}/etc`;
    await Deno.mkdir(etc);
    await Deno.writeTextFile(
      `${etc}/passwd`,
      "root:x:0:0:root:/root:/bin/bash\nopenmex:x:5:5::/:/bin/false\nopenme:x:990:991:openme:/nonexistent:/usr/sbin/nologin\n",
    );
    await Deno.writeTextFile(
      `${etc}/group`,
      "root:x:0:\nopenme:x:991:\n",
    );
    await fn(etc, dir);
  });
}

Deno.test("accountIds reads the user's uid from passwd and the group's gid from group, null when missing", async () => {
  await withEtc(async (etc) => {
    assert.deepEqual(await accountIds("openme", etc), { uid: 990, gid: 991 });
    assert.deepEqual(await accountIds("root", etc), { uid: 0, gid: 0 });
    assert.deepEqual(await accountIds("nobody-here", etc), {
      uid: null,
      gid: null,
    });
    assert.deepEqual(await accountIds("openme", `${etc}/missing`), {
      uid: null,
      gid: null,
    });
  });
});

Deno.test("unsafeOwnership refuses group/world write bits and foreign owners, naming the chmod or chown", () => {
  const options = { owners: [0, 990], fixOwner: "root" };
  assert.equal(unsafeOwnership("/x", { mode: 0o644, uid: 0 }, options), null);
  assert.equal(unsafeOwnership("/x", { mode: 0o600, uid: 990 }, options), null);
  assert.equal(
    unsafeOwnership("/x", { mode: 0o664, uid: 0 }, options),
    "mode 0664 lets other users change it (run chmod go-w /x)",
  );
  assert.equal(
    unsafeOwnership("/x", { mode: 0o646, uid: 0 }, options),
    "mode 0646 lets other users change it (run chmod go-w /x)",
  );
  assert.equal(
    unsafeOwnership("/x", { mode: 0o644, uid: 1000 }, options),
    "it is owned by uid 1000, another user (run chown root /x)",
  );
  assert.equal(
    unsafeOwnership("/x", { mode: null, uid: null }, options),
    null,
    "nothing known (Windows): nothing judged",
  );
});

Deno.test({
  name:
    "configChangeableByOthers flags a config or directory another user owns or may write, naming the fix",
  ignore: !IS_ROOT,
  fn: async () => {
    await withTempDir("openme-ownership-", async (dir) => {
      const conf = `${dir}/openme`;
      const path = `${conf}/config.yaml`;
      await Deno.mkdir(conf, { mode: 0o750 });
      await Deno.writeTextFile(path, "x: 1\n", { mode: 0o640 });
      // target, uid, gid, mode, changeable by others than root
      const layouts: [string, number, number, number, boolean][] = [
        [path, 0, 991, 0o640, false], // root:openme 0640, the layout init makes
        [path, 990, 991, 0o600, true], // the service user's own file
        [path, 990, 991, 0o400, true], // its owner may chmod it
        [path, 0, 991, 0o660, true], // group-writable
        [path, 0, 0, 0o646, true], // world-writable
        [conf, 990, 991, 0o750, true], // the old layout: the directory is the service's
        [conf, 0, 991, 0o770, true],
        [conf, 0, 991, 0o750, false],
      ];
      for (const [target, uid, gid, mode, changeable] of layouts) {
        await Deno.chown(target, uid, gid);
        await Deno.chmod(target, mode);
        const found = await configChangeableByOthers(path);
        assert.equal(
          found !== null,
          changeable,
          `${target} ${uid}:${gid} ${mode.toString(8)}: ${found}`,
        );
        await Deno.chown(target, 0, 991);
        await Deno.chmod(target, target === conf ? 0o750 : 0o640);
      }
      await Deno.chown(conf, 990, 991);
      assert.equal(
        await configChangeableByOthers(path),
        `config ${conf}: it is owned by uid 990, another user (run chown root ${conf}); only root should change the server config, the openme service just reads it`,
      );
    });
  },
});
