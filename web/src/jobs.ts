// Generation jobs: write a job document as the signed-in user, then follow it live.
//
// Every job collection has one lifecycle (docs/job-status.md): pending -> processing ->
// completed | failed, with `progress` 0-100 and `error {code, message}`. The app writes the
// document with the web SDK (firestore.rules check it) and watches it with onSnapshot.
import type { User } from "firebase/auth";
import {
  collection,
  doc,
  onSnapshot,
  serverTimestamp,
  setDoc,
  type DocumentData,
} from "firebase/firestore";
import type { Services } from "./firebase";
import { button, describeError, el, ProgressBar, section } from "./ui";

type Kind = "image" | "video" | "multi" | "composition";

const COLLECTIONS: Record<Kind, string> = {
  image: "image_generation_jobs",
  video: "video_generation_jobs",
  multi: "multi_video_jobs",
  composition: "composition_jobs",
};
const STORYBOARD = "web-storyboard";

interface Clip {
  scene_number: number;
  video_url: string;
  duration: number;
}

export class JobsPanel {
  readonly root = section("Generation jobs", "jobs");
  private user: User | null = null;
  private lastImageUrl: string | null = null;
  private lastVideo: Clip | null = null;
  private lastClips: Clip[] = [];
  private readonly list = el("div", { id: "job-list" });
  private readonly prompt = el("input", { id: "image-prompt", value: "A lighthouse on a cliff at dawn" });
  private readonly message = el("p", { id: "jobs-message" });
  private readonly buttons: HTMLButtonElement[];

  constructor(private readonly svc: Services) {
    this.buttons = [
      button("Make an image", () => this.create("image", this.imageJob()), { id: "create-image" }),
      button("Animate the last image", () => this.createVideo(), { id: "create-video" }),
      button("Multi-video from the last image", () => this.createMulti(), { id: "create-multi" }),
      button("Compose the last clips", () => this.createComposition(), { id: "create-composition" }),
      button("Rules check: write a job for another user", () => this.writeForSomeoneElse(), {
        id: "rules-check",
      }),
    ];
    this.root.append(
      el("p", { class: "hint", text: "Each job is a Firestore document; the bars follow it with onSnapshot." }),
      el("div", { class: "row" }, this.prompt, ...this.buttons),
      this.message,
      this.list,
    );
    this.setUser(null);
  }

  setUser(user: User | null): void {
    this.user = user;
    for (const b of this.buttons) b.disabled = user === null;
  }

  private imageJob(): DocumentData {
    return { scene_id: "scene-1", storyboard_id: STORYBOARD, text: this.prompt.value, style_prompt: "" };
  }

  private async createVideo(): Promise<void> {
    if (!this.lastImageUrl) return this.say("Make an image first: the video animates it.");
    await this.create("video", {
      scene_id: "scene-1",
      storyboard_id: STORYBOARD,
      image_url: this.lastImageUrl,
      text: "slow push in",
      duration: 3,
      aspect_ratio: "16:9",
    });
  }

  private async createMulti(): Promise<void> {
    if (!this.lastImageUrl) return this.say("Make an image first: every scene starts from it.");
    const scenes = [1, 2].map((n) => ({
      scene_number: n,
      seed_image_url: this.lastImageUrl,
      duration: 2,
      description: `scene ${n}`,
    }));
    await this.create("multi", { scenes, progress_percent: 0, clips: [], aspect_ratio: "16:9" });
  }

  private async createComposition(): Promise<void> {
    const clips = this.lastClips.length ? this.lastClips : this.lastVideo ? [this.lastVideo] : [];
    if (!clips.length) return this.say("Make a video or a multi-video job first: their clips are composed.");
    await this.create("composition", { clips, include_crossfade: clips.length > 1, optimize_size: false });
  }

  /** The rules allow a job only for the signed-in user: this write must be refused. */
  private async writeForSomeoneElse(): Promise<void> {
    const ref = doc(collection(this.svc.db, COLLECTIONS.image));
    try {
      await setDoc(ref, { ...this.imageJob(), job_id: ref.id, user_id: "someone-else", status: "pending" });
      this.say(`Unexpected: the write for another user was accepted (${ref.id}).`, "rules-result");
    } catch (err) {
      this.say(`Refused by the rules: ${describeError(err)}`, "rules-result", ref.id);
    }
  }

  private say(text: string, kind = "info", jobId = ""): void {
    this.message.textContent = text;
    this.message.dataset.kind = kind;
    this.message.dataset.jobId = jobId;
  }

  private async create(kind: Kind, fields: DocumentData): Promise<void> {
    if (!this.user) return;
    const ref = doc(collection(this.svc.db, COLLECTIONS[kind]));
    const card = new JobCard(kind, ref.id);
    this.list.prepend(card.root);
    // Listen first, then write: the listener sees every state from `pending` on.
    const stop = onSnapshot(
      ref,
      (snap) => {
        const data = snap.data();
        if (!data) return;
        card.show(data);
        if ((data.status === "completed" || data.status === "failed") && !card.root.dataset.terminalSeenAt) {
          card.root.dataset.terminalSeenAt = String(Date.now()); // when this listener saw the end
        }
        if (data.status === "completed") this.remember(kind, data);
        if (data.status === "completed" || data.status === "failed") stop();
      },
      (err) => card.fail(describeError(err)),
    );
    try {
      card.root.dataset.writtenAt = String(Date.now());
      await setDoc(ref, {
        ...fields,
        job_id: ref.id,
        user_id: this.user.uid,
        status: "pending",
        created_at: serverTimestamp(),
        updated_at: serverTimestamp(),
      });
      this.say("");
    } catch (err) {
      stop();
      card.fail(describeError(err));
    }
  }

  private remember(kind: Kind, data: DocumentData): void {
    if (kind === "image") this.lastImageUrl = String(data.image_url);
    if (kind === "video" || kind === "composition") {
      this.lastVideo = { scene_number: 1, video_url: String(data.video_url), duration: Number(data.duration) };
    }
    if (kind === "multi") this.lastClips = (data.clips as Clip[]) ?? [];
  }
}

/** One job on the page: its status, a progress bar, the error or the output. */
class JobCard {
  readonly root: HTMLElement;
  private readonly bar: ProgressBar;
  private readonly output = el("div", { class: "output" });

  constructor(kind: Kind, id: string) {
    this.bar = new ProgressBar();
    this.bar.set(0, "writing the job…");
    this.root = el(
      "div",
      { class: "card job", "data-kind": kind, "data-job-id": id, "data-status": "" },
      el("strong", { text: `${kind} job` }),
      el("code", { text: id }),
      this.bar.root,
      this.output,
    );
  }

  show(data: DocumentData): void {
    const status = String(data.status ?? "?");
    const progress = Number(data.progress ?? data.progress_percent ?? 0);
    this.root.dataset.status = status;
    const error = data.error as { code?: string; message?: string } | null;
    this.bar.set(status === "completed" ? 100 : progress, error ? `${status}: ${error.code}` : status);
    this.output.replaceChildren();
    if (error) this.output.append(el("p", { class: "error", text: `${error.code}: ${error.message}` }));
    if (data.image_url) {
      this.output.append(el("img", { src: String(data.image_url), alt: "generated image", class: "result" }));
      this.output.append(el("p", { text: `${data.width}x${data.height}, provider ${data.provider}` }));
    }
    if (data.video_url && status === "completed") {
      this.output.append(el("video", { src: String(data.video_url), controls: true, muted: true, class: "result" }));
    }
    const clips = (data.clips as Clip[] | undefined) ?? [];
    if (clips.length && !data.video_url) {
      this.output.append(el("p", { text: `${clips.length} of ${data.scenes_total ?? "?"} scenes done` }));
    }
  }

  fail(message: string): void {
    this.root.dataset.status = "error";
    this.bar.set(0, "refused");
    this.output.replaceChildren(el("p", { class: "error", text: message }));
  }
}
