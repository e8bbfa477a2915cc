// The reference web app: sign in, make media, upload and play, spend tokens.
// Each panel is one module; this file only wires them to the signed-in user.
import { loadConfig } from "./config";
import { connect } from "./firebase";
import { authPanel } from "./auth-panel";
import { CreationsPanel } from "./creations";
import { JobsPanel } from "./jobs";
import { LongformPanel } from "./longform";
import { UploadPanel } from "./uploads";
import { el } from "./ui";
import "./style.css";

async function main(): Promise<void> {
  const root = document.getElementById("app");
  if (!root) throw new Error("no #app element");
  const config = await loadConfig();
  const svc = connect(config);
  const local = config.localStack;
  if (local) {
    const notes = [`Local stack: Firestore is the ${local.firestore === "official" ? "official emulator (firestore.rules enforced)" : local.firestore + " server"}.`];
    if (!local.webSdkFirestore) notes.push("This Firestore server cannot serve the web SDK: install the official emulator.");
    if (!local.storageRulesEvaluated) notes.push("storage.rules are not evaluated offline.");
    root.append(el("p", { id: "stack-banner", class: "banner", text: notes.join(" ") }));
  }
  const jobs = new JobsPanel(svc);
  const uploads = new UploadPanel(svc);
  const creations = new CreationsPanel(svc);
  const longform = new LongformPanel(svc);
  const auth = authPanel(svc, (user) => {
    for (const panel of [jobs, uploads, creations, longform]) panel.setUser(user);
    document.body.dataset.signedIn = user ? "true" : "false";
  });
  root.append(auth, jobs.root, uploads.root, creations.root, longform.root);
  document.body.dataset.ready = "true";
}

main().catch((err: unknown) => {
  document.body.dataset.ready = "error";
  document.getElementById("app")?.append(el("p", { class: "error", text: `The app could not start: ${String(err)}` }));
});
