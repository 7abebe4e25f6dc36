/**
 * Who may change openme's files (lib/config/ownership.ts): the service
 * account from passwd and group, the unsafe-file judgement with its fix, and
 * the check that the service user cannot write the server config.
 */
import assert from "node:assert/strict";
import {
  accountIds,
  serviceCanWrite,
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
    "serviceCanWrite flags a config or directory the service user owns or may write through its group, with the chown and chmod",
  ignore: !IS_ROOT,
  fn: async () => {
    await withEtc(async (etc, dir) => {
      const conf = `${dir}/openme`;
      const path = `${conf}/config.yaml`;
      await Deno.mkdir(conf, { mode: 0o750 });
      await Deno.writeTextFile(path, "x: 1\n", { mode: 0o640 });
      const layouts: [string, number, number, number, boolean][] = [
        // target, uid, gid, mode, writable by openme
        [path, 0, 991, 0o640, false],
        [path, 990, 991, 0o600, true],
        [path, 0, 991, 0o660, true],
        [path, 0, 0, 0o666, true],
        [path, 990, 991, 0o400, false],
      ];
      await Deno.chown(conf, 0, 991);
      for (const [target, uid, gid, mode, writable] of layouts) {
        await Deno.chown(target, uid, gid);
        await Deno.chmod(target, mode);
        const found = await serviceCanWrite(path, etc);
        assert.equal(
          found !== null,
          writable,
          `${uid}:${gid} ${mode.toString(8)}`,
        );
      }
      await Deno.chown(path, 0, 991);
      await Deno.chmod(path, 0o640);
      await Deno.chown(conf, 990, 991); // the old layout: the directory is openme's
      assert.deepEqual(await serviceCanWrite(path, etc), {
        text:
          `the openme service user may write ${conf}: a compromised daemon could change its own config`,
        fix:
          `chown root:openme ${conf} ${path} && chmod 0750 ${conf} && chmod 0640 ${path}`,
      });
      assert.equal(
        await serviceCanWrite(path, `${dir}/no-etc`),
        null,
        "no service account: nothing to flag",
      );
    });
  },
});
