// Security rules on the official emulators, with @firebase/rules-unit-testing.
//
//   npm install --prefix tests/rules
//   RULES_FIRESTORE_EMULATOR_HOST=127.0.0.1:8080 node --test tests/rules/
//
// Emulators: RULES_FIRESTORE_EMULATOR_HOST (default 127.0.0.1:8080, the port firebase.json
// gives the Firestore emulator) and RULES_STORAGE_EMULATOR_HOST (default 127.0.0.1:9199).
// Each part is SKIPPED, with the reason printed, when its official emulator is not
// reachable (our local stack's Firestore server does not evaluate rules) or when the
// npm packages are not installed. tests/rules/test_rules_emulator.py runs this file from
// pytest and starts the gcloud Firestore emulator itself when it is installed.
//
// Each case names the rule intent it checks (docs/security-rules.md).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const PROJECT = "demo-rules-test";

function hostPort(value) {
  const [host, port] = value.replace(/^https?:\/\//, "").split(":");
  return { host, port: Number(port) };
}

async function answers(where, expectOk) {
  try {
    const res = await fetch(`http://${where.host}:${where.port}/`, { signal: AbortSignal.timeout(1500) });
    const body = (await res.text()).trim();
    return expectOk ? body === "Ok" : true;
  } catch {
    return false;
  }
}

async function loadLibraries() {
  try {
    return {
      rut: await import("@firebase/rules-unit-testing"),
      fs: await import("firebase/firestore"),
      st: await import("firebase/storage"),
    };
  } catch (err) {
    return { error: `npm packages missing (run: npm install --prefix tests/rules): ${err.message}` };
  }
}

const libs = await loadLibraries();
if (!libs.error) libs.fs.setLogLevel("silent");
const firestoreAt = hostPort(process.env.RULES_FIRESTORE_EMULATOR_HOST || "127.0.0.1:8080");
const storageAt = hostPort(process.env.RULES_STORAGE_EMULATOR_HOST || "127.0.0.1:9199");
const firestoreUp = await answers(firestoreAt, true);
const storageUp = await answers(storageAt, false);

const firestoreSkip = libs.error
  ? libs.error
  : firestoreUp
    ? false
    : `the official Firestore emulator is not reachable at ${firestoreAt.host}:${firestoreAt.port} ` +
      "(set RULES_FIRESTORE_EMULATOR_HOST; the local stack's server does not evaluate rules)";
const storageSkip = libs.error
  ? libs.error
  : storageUp
    ? false
    : `the official Storage emulator is not reachable at ${storageAt.host}:${storageAt.port} ` +
      "(set RULES_STORAGE_EMULATOR_HOST; it needs firebase-tools' rules runtime)";
if (firestoreSkip) console.log(`SKIP firestore rules: ${firestoreSkip}`);
if (storageSkip) console.log(`SKIP storage rules: ${storageSkip}`);

// --------------------------------------------------------------------------------------
// Firestore
// --------------------------------------------------------------------------------------
describe("firestore.rules", { skip: firestoreSkip }, () => {
  let env;
  let F;
  const alice = () => env.authenticatedContext("alice").firestore();
  const bob = () => env.authenticatedContext("bob").firestore();
  const anon = () => env.unauthenticatedContext().firestore();
  const ok = (p) => libs.rut.assertSucceeds(p);
  const no = (p) => libs.rut.assertFails(p);

  async function seed(path, data) {
    await env.withSecurityRulesDisabled(async (ctx) => {
      await F.setDoc(F.doc(ctx.firestore(), path), data);
    });
  }

  before(async () => {
    F = libs.fs;
    env = await libs.rut.initializeTestEnvironment({
      projectId: PROJECT,
      firestore: { ...firestoreAt, rules: readFileSync(join(ROOT, "firestore.rules"), "utf8") },
    });
  });
  after(async () => env && (await env.cleanup()));

  test("users read their own user doc and ledger; nobody else does", async () => {
    await env.clearFirestore();
    await seed("users/alice", { balance: 100 });
    await seed("users/alice/ledger/grant-1", { type: "grant", amount: 100 });
    await ok(F.getDoc(F.doc(alice(), "users/alice")));
    await ok(F.getDoc(F.doc(alice(), "users/alice/ledger/grant-1")));
    await no(F.getDoc(F.doc(bob(), "users/alice")));
    await no(F.getDoc(F.doc(bob(), "users/alice/ledger/grant-1")));
    await no(F.getDoc(F.doc(anon(), "users/alice")));
  });

  test("only the backend writes balances and ledger entries", async () => {
    await env.clearFirestore();
    await seed("users/alice", { balance: 100 });
    await no(F.updateDoc(F.doc(alice(), "users/alice"), { balance: 1e9 }));
    await no(F.setDoc(F.doc(bob(), "users/bob"), { balance: 5 }));
    await no(F.setDoc(F.doc(alice(), "users/alice/ledger/x"), { type: "grant", amount: 5 }));
    await no(F.deleteDoc(F.doc(alice(), "users/alice/ledger/grant-1")));
    await ok(F.updateDoc(F.doc(alice(), "users/alice"), { displayName: "Alice" }));
    await ok(F.setDoc(F.doc(bob(), "users/bob"), { displayName: "Bob" }));
  });

  test("creations: owner reads, nobody creates or updates, owner deletes draft/failed only", async () => {
    await env.clearFirestore();
    await seed("creations/d", { userId: "alice", status: "draft", cost: 40 });
    await seed("creations/f", { userId: "alice", status: "failed", cost: 40 });
    await seed("creations/p", { userId: "alice", status: "processing", cost: 40 });
    await seed("creations/pub", { userId: "alice", status: "published", cost: 40 });
    await ok(F.getDoc(F.doc(alice(), "creations/d")));
    await no(F.getDoc(F.doc(bob(), "creations/d")));
    await no(F.setDoc(F.doc(alice(), "creations/free"), { userId: "alice", status: "pending", cost: 0 }));
    await no(F.updateDoc(F.doc(alice(), "creations/p"), { status: "draft" }));
    await no(F.updateDoc(F.doc(alice(), "creations/d"), { refunded: true }));
    await no(F.deleteDoc(F.doc(bob(), "creations/d")));
    await no(F.deleteDoc(F.doc(alice(), "creations/p")));
    await no(F.deleteDoc(F.doc(alice(), "creations/pub")));
    await ok(F.deleteDoc(F.doc(alice(), "creations/d")));
    await ok(F.deleteDoc(F.doc(alice(), "creations/f")));
  });

  test("drafts query: a user may list only their own creations", async () => {
    await env.clearFirestore();
    await seed("creations/a1", { userId: "alice", status: "draft", createdAt: new Date() });
    const mine = F.query(F.collection(alice(), "creations"), F.where("userId", "==", "alice"));
    await ok(F.getDocs(mine));
    await no(F.getDocs(F.collection(alice(), "creations")));
  });

  test("the feed is public and read-only", async () => {
    await env.clearFirestore();
    await seed("feed/c1", { userId: "alice", mediaUrl: "https://x/y.mp4" });
    await ok(F.getDoc(F.doc(anon(), "feed/c1")));
    await no(F.setDoc(F.doc(alice(), "feed/c2"), { userId: "alice" }));
    await no(F.deleteDoc(F.doc(alice(), "feed/c1")));
  });

  const imageJob = (over = {}) => ({
    job_id: "j1",
    scene_id: "scene-1",
    storyboard_id: "sb-1",
    user_id: "alice",
    text: "A lighthouse",
    style_prompt: "watercolor",
    use_product_composite: false,
    product_id: null,
    status: "pending",
    created_at: F.serverTimestamp(),
    updated_at: F.serverTimestamp(),
    ...over,
  });

  test("image jobs: owner creates a valid pending job; no other shape passes", async () => {
    await env.clearFirestore();
    const path = "image_generation_jobs/j1";
    await no(F.setDoc(F.doc(alice(), path), imageJob({ status: "completed" })));
    await no(F.setDoc(F.doc(alice(), path), imageJob({ user_id: "bob" })));
    await no(F.setDoc(F.doc(alice(), path), imageJob({ progress: 100 })));
    await no(F.setDoc(F.doc(alice(), path), imageJob({ text: "" })));
    await no(F.setDoc(F.doc(alice(), path), imageJob({ job_id: "other" })));
    await no(F.setDoc(F.doc(alice(), path), imageJob({ created_at: new Date(0) })));
    await no(F.setDoc(F.doc(anon(), path), imageJob()));
    await ok(F.setDoc(F.doc(alice(), path), imageJob()));
    await ok(F.getDoc(F.doc(alice(), path)));
    await no(F.getDoc(F.doc(bob(), path)));
    await no(F.updateDoc(F.doc(alice(), path), { status: "completed" }));
    await no(F.deleteDoc(F.doc(alice(), path)));
  });

  test("video, multi-video and composition jobs validate their seed schemas", async () => {
    await env.clearFirestore();
    const video = {
      job_id: "v1", scene_id: "s1", storyboard_id: "sb", user_id: "alice",
      image_url: "https://example.com/a.png", text: "pan", duration: 5, status: "pending",
    };
    await ok(F.setDoc(F.doc(alice(), "video_generation_jobs/v1"), video));
    await no(F.setDoc(F.doc(alice(), "video_generation_jobs/v2"), { ...video, job_id: "v2", duration: 0 }));
    await no(F.setDoc(F.doc(alice(), "video_generation_jobs/v3"), { ...video, job_id: "v3", image_url: "file:///etc/passwd" }));
    await no(F.setDoc(F.doc(alice(), "video_generation_jobs/v4"), { ...video, job_id: "v4", provider: "veo" }));
    const multi = {
      job_id: "m1", user_id: "alice", status: "pending", audio_url: null, progress_percent: 0, clips: [],
      scenes: [{ scene_number: 1, seed_image_url: "https://example.com/1.png", duration: 4, description: "x" }],
    };
    await ok(F.setDoc(F.doc(alice(), "multi_video_jobs/m1"), multi));
    await no(F.setDoc(F.doc(alice(), "multi_video_jobs/m2"), { ...multi, job_id: "m2", scenes: [] }));
    await no(F.setDoc(F.doc(alice(), "multi_video_jobs/m3"), { ...multi, job_id: "m3", progress_percent: 50 }));
    const comp = {
      job_id: "c1", user_id: "alice", status: "pending", audio_url: null, include_crossfade: true,
      optimize_size: false, video_url: null,
      clips: [{ scene_number: 1, video_url: "https://example.com/1.mp4", duration: 4 }],
    };
    await ok(F.setDoc(F.doc(alice(), "composition_jobs/c1"), comp));
    await no(F.setDoc(F.doc(alice(), "composition_jobs/c2"), { ...comp, job_id: "c2", video_url: "https://x/y.mp4" }));
    await no(F.setDoc(F.doc(alice(), "composition_jobs/c3"), { ...comp, job_id: "c3", include_crossfade: "yes" }));
    await no(F.updateDoc(F.doc(alice(), "composition_jobs/c1"), { status: "pending" }));
  });

  test("long-form jobs and videos: owner reads, clients never write", async () => {
    await env.clearFirestore();
    await seed("videoJobs/l1", { userId: "alice", status: "queued" });
    await seed("videos/v1", { userId: "alice", status: "ready" });
    await ok(F.getDoc(F.doc(alice(), "videoJobs/l1")));
    await ok(F.getDoc(F.doc(alice(), "videos/v1")));
    await no(F.getDoc(F.doc(bob(), "videos/v1")));
    await no(F.setDoc(F.doc(alice(), "videoJobs/l2"), { userId: "alice", status: "queued" }));
    await no(F.updateDoc(F.doc(alice(), "videos/v1"), { status: "complete" }));
  });

  test("a listener may be attached before its job or video document exists", async () => {
    await env.clearFirestore();
    await ok(F.getDoc(F.doc(alice(), "videos/not-yet")));
    await ok(F.getDoc(F.doc(alice(), "image_generation_jobs/not-yet")));
    await ok(F.getDoc(F.doc(alice(), "videoJobs/not-yet")));
    await no(F.getDoc(F.doc(anon(), "videos/not-yet")));
    await no(F.getDoc(F.doc(alice(), "creations/not-yet")));
    await seed("videos/v2", { userId: "alice", status: "processing" });
    await no(F.getDoc(F.doc(bob(), "videos/v2")));
  });

  test("storyboards and scenes belong to the storyboard's owner; outputs are backend-only", async () => {
    await env.clearFirestore();
    await ok(F.setDoc(F.doc(alice(), "storyboards/sb1"), { user_id: "alice", title: "t" }));
    await no(F.setDoc(F.doc(bob(), "storyboards/sb2"), { user_id: "alice", title: "t" }));
    await ok(F.setDoc(F.doc(alice(), "storyboards/sb1/scenes/s1"), { text: "a scene" }));
    await no(F.setDoc(F.doc(alice(), "storyboards/sb1/scenes/s2"), { text: "x", image_url: "https://x" }));
    await no(F.updateDoc(F.doc(alice(), "storyboards/sb1/scenes/s1"), { video_url: "https://x" }));
    await ok(F.updateDoc(F.doc(alice(), "storyboards/sb1/scenes/s1"), { text: "edited" }));
    await no(F.getDoc(F.doc(bob(), "storyboards/sb1/scenes/s1")));
    await no(F.updateDoc(F.doc(alice(), "storyboards/sb1"), { user_id: "bob" }));
  });

  test("products are readable when signed in, never client-written; other paths are denied", async () => {
    await env.clearFirestore();
    await seed("products/p1", { name: "Box", image_path: "products/p1.png" });
    await ok(F.getDoc(F.doc(alice(), "products/p1")));
    await no(F.getDoc(F.doc(anon(), "products/p1")));
    await no(F.setDoc(F.doc(alice(), "products/p2"), { name: "Mine" }));
    await no(F.setDoc(F.doc(alice(), "anything/x"), { a: 1 }));
    await no(F.getDoc(F.doc(alice(), "anything/x")));
  });
});

// --------------------------------------------------------------------------------------
// Storage
// --------------------------------------------------------------------------------------
describe("storage.rules", { skip: storageSkip }, () => {
  let env;
  let S;
  const as = (uid) => env.authenticatedContext(uid).storage();
  const ok = (p) => libs.rut.assertSucceeds(p);
  const no = (p) => libs.rut.assertFails(p);
  const bytes = (n) => new Uint8Array(n);

  before(async () => {
    S = libs.st;
    env = await libs.rut.initializeTestEnvironment({
      projectId: PROJECT,
      storage: { ...storageAt, rules: readFileSync(join(ROOT, "storage.rules"), "utf8") },
    });
  });
  after(async () => env && (await env.cleanup()));

  test("uploads only to the uploader's own path, with type and size limits", async () => {
    await ok(S.uploadBytes(S.ref(as("alice"), "uploads/alice/a.mp4"), bytes(1024), { contentType: "video/mp4" }));
    await no(S.uploadBytes(S.ref(as("bob"), "uploads/alice/b.mp4"), bytes(1024), { contentType: "video/mp4" }));
    await no(S.uploadBytes(S.ref(as("alice"), "uploads/alice/c.txt"), bytes(10), { contentType: "text/plain" }));
    await no(S.uploadBytes(S.ref(as("alice"), "uploads/alice/big.png"), bytes(21 * 1024 * 1024), { contentType: "image/png" }));
    await no(S.uploadBytes(S.ref(as("alice"), "users/alice/creations/x.mp4"), bytes(10), { contentType: "video/mp4" }));
    await no(S.uploadBytes(S.ref(env.unauthenticatedContext().storage(), "uploads/alice/d.mp4"), bytes(10), { contentType: "video/mp4" }));
  });

  test("outputs: own users/ path readable by its user; streams public; nothing else", async () => {
    await env.withSecurityRulesDisabled(async (ctx) => {
      const s = ctx.storage();
      await S.uploadBytes(S.ref(s, "users/alice/creations/c.mp4"), bytes(10), { contentType: "video/mp4" });
      await S.uploadBytes(S.ref(s, "streams/v1/master.m3u8"), bytes(10), { contentType: "application/vnd.apple.mpegurl" });
    });
    await ok(S.getBytes(S.ref(as("alice"), "users/alice/creations/c.mp4")));
    await no(S.getBytes(S.ref(as("bob"), "users/alice/creations/c.mp4")));
    await ok(S.getBytes(S.ref(env.unauthenticatedContext().storage(), "streams/v1/master.m3u8")));
    await no(S.deleteObject(S.ref(as("alice"), "streams/v1/master.m3u8")));
    assert.ok(true);
  });
});
