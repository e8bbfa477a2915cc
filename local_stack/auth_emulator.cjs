// The Firebase Auth emulator of firebase-tools (pure Node, no Java), started without the CLI.
//
//   node local_stack/auth_emulator.cjs PORT PROJECT_ID [DATA_DIR]
//
// `firebase emulators:start --only auth` runs this same AuthEmulator class, but first
// fetches its MOTD and notifies editor extensions over the network, which costs tens of
// seconds offline, and it writes a hub locator per project that concurrent stacks of one
// project would share. With DATA_DIR, accounts are imported from DATA_DIR at start (the
// layout `firebase emulators:export` writes: accounts.json, config.json) and exported
// there on SIGTERM/SIGINT/SIGHUP, so users survive a restart of the local stack.
const fs = require("node:fs");
const path = require("node:path");
const http = require("node:http");
const { AuthEmulator, SingleProjectMode } = require("firebase-tools/lib/emulator/auth");

const port = Number(process.argv[2]);
const projectId = process.argv[3];
const dataDir = process.argv[4] || null;

const emulator = new AuthEmulator({
  host: "127.0.0.1",
  port,
  projectId,
  singleProjectMode: SingleProjectMode.WARNING,
});

function fetchJson(urlPath) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: "127.0.0.1", port, path: urlPath, headers: { Authorization: "Bearer owner" } },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`${urlPath}: ${res.statusCode} ${body}`)),
        );
      },
    );
    req.on("error", reject);
  });
}

async function exportData() {
  const tmp = `${dataDir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const accounts = await fetchJson(
    `/identitytoolkit.googleapis.com/v1/projects/${projectId}/accounts:batchGet?maxResults=-1`,
  );
  fs.writeFileSync(path.join(tmp, "accounts.json"), accounts);
  fs.writeFileSync(path.join(tmp, "config.json"), await fetchJson(`/emulator/v1/projects/${projectId}/config`));
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.renameSync(tmp, dataDir);
}

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  try {
    if (dataDir) await exportData();
  } catch (err) {
    process.stderr.write(`auth export failed: ${err}\n`);
  }
  await emulator.stop();
  process.stderr.write(`auth emulator stopped (${signal})\n`);
  process.exit(0);
}
for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(sig, () => void stop(sig));

(async () => {
  const started = Date.now();
  await emulator.start();
  if (dataDir && fs.existsSync(path.join(dataDir, "accounts.json"))) {
    await emulator.importData(dataDir, projectId, { initiatedBy: "local-stack" });
  }
  process.stderr.write(`auth emulator listening on 127.0.0.1:${port} after ${Date.now() - started} ms\n`);
  process.stdout.write("ready\n"); // the stack waits for this line (accounts imported)
})().catch((err) => {
  process.stderr.write(`auth emulator failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
